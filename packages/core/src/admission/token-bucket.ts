/**
 * Token buckets for the local rate limit: one per server and, when callers are told apart, one per
 * caller key. Time comes from an injectable clock (ms, monotonic), so tests need no timers.
 */

export type Clock = () => number

export class TokenBucket {
  readonly rate: number
  readonly burst: number
  #tokens: number
  #at: number
  readonly #clock: Clock

  /** `rate` tokens per second, at most `burst` saved; starts full. */
  constructor(rate: number, burst: number, clock: Clock = () => performance.now()) {
    this.rate = rate
    this.burst = burst
    this.#clock = clock
    this.#tokens = burst
    this.#at = clock()
  }

  /** Takes one token: returns 0 when taken, else the ms until one will be there (nothing taken). */
  take(): number {
    this.#refill()
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return 0
    }
    return Math.ceil(((1 - this.#tokens) / this.rate) * 1000)
  }

  /** Tokens now available (refilled to the clock). */
  available(): number {
    this.#refill()
    return this.#tokens
  }

  /** True when the bucket is full again: forgetting it changes nothing for its caller. */
  full(): boolean {
    return this.available() >= this.burst
  }

  #refill(): void {
    const now = this.#clock()
    const elapsed = now - this.#at
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (elapsed / 1000) * this.rate)
      this.#at = now
    }
  }
}

/**
 * One bucket per caller key, at most `maxKeys` of them. When the table is full, full buckets are
 * dropped first (their callers lose nothing), then the oldest tenth, so a flood of distinct keys
 * costs bounded memory and amortized constant time, and at worst gives some callers a fresh burst.
 */
export class CallerBuckets {
  readonly #buckets = new Map<string, TokenBucket>()
  readonly #rate: number
  readonly #burst: number
  readonly #maxKeys: number
  readonly #clock: Clock

  constructor(rate: number, burst: number, clock: Clock = () => performance.now(), maxKeys = 10_000) {
    this.#rate = rate
    this.#burst = burst
    this.#clock = clock
    this.#maxKeys = maxKeys
  }

  get size(): number {
    return this.#buckets.size
  }

  /** Takes a token from `key`'s bucket: 0 when taken, else the ms until one will be there. */
  take(key: string): number {
    let b = this.#buckets.get(key)
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict()
      b = new TokenBucket(this.#rate, this.#burst, this.#clock)
      this.#buckets.set(key, b)
    }
    return b.take()
  }

  #evict(): void {
    for (const [k, b] of this.#buckets) if (b.full()) this.#buckets.delete(k)
    if (this.#buckets.size < this.#maxKeys) return
    let drop = Math.max(1, Math.floor(this.#maxKeys / 10))
    for (const k of this.#buckets.keys()) {
      if (drop-- === 0) break
      this.#buckets.delete(k)
    }
  }
}
