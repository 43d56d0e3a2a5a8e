/**
 * A retry budget (Finagle's RetryBudget): over a sliding window of `ttl`, retries may add at most
 * `percent`% to the requests, plus `minPerSecond` per second so that low-traffic destinations can
 * still retry. When every endpoint fails, total attempts stay near (1 + percent/100) × requests
 * instead of multiplying the load by the attempt count.
 *
 * The same bound also holds over the last two buckets alone (two seconds with the default 10 s
 * ttl), so it caps bursts, not only rates: the long window holds tokens saved while the
 * destination was healthy (its reserve alone is minPerSecond × ttl = 100 by default), and without
 * this they all went out in the first seconds of an outage (attempts were 1.62× requests for 3 s).
 */
const BUCKETS = 10

export class RetryBudget {
  readonly #ratio: number
  readonly #reserve: number
  /** The reserve over the two most recent buckets. */
  readonly #recentReserve: number
  readonly #bucketMs: number
  readonly #deposits = new Float64Array(BUCKETS)
  readonly #withdrawals = new Float64Array(BUCKETS)
  #bucket = 0
  #bucketStart: number
  readonly #clock: () => number

  constructor(percent: number, minPerSecond: number, ttlMs: number, clock: () => number = performance.now.bind(performance)) {
    this.#ratio = percent / 100
    this.#reserve = (minPerSecond * ttlMs) / 1000
    this.#bucketMs = ttlMs / BUCKETS
    this.#recentReserve = (minPerSecond * 2 * this.#bucketMs) / 1000
    this.#clock = clock
    this.#bucketStart = clock()
  }

  /** Counts one request (each call, not each attempt). */
  deposit(): void {
    this.#advance()
    this.#deposits[this.#bucket]!++
  }

  /** Takes one retry from the budget; false when none is left. */
  tryWithdraw(): boolean {
    if (this.balance() < 1) return false
    this.#withdrawals[this.#bucket]!++
    return true
  }

  /** Retries currently allowed: the lesser of the window's balance and the recent buckets'. */
  balance(): number {
    this.#advance()
    let deposits = 0
    let withdrawals = 0
    for (let i = 0; i < BUCKETS; i++) {
      deposits += this.#deposits[i]!
      withdrawals += this.#withdrawals[i]!
    }
    const prev = (this.#bucket + BUCKETS - 1) % BUCKETS
    const recent = this.#recentReserve + (this.#deposits[this.#bucket]! + this.#deposits[prev]!) * this.#ratio - this.#withdrawals[this.#bucket]! - this.#withdrawals[prev]!
    const long = this.#reserve + deposits * this.#ratio - withdrawals
    return recent < long ? recent : long
  }

  #advance(): void {
    const now = this.#clock()
    let steps = Math.floor((now - this.#bucketStart) / this.#bucketMs)
    if (steps <= 0) return
    this.#bucketStart += steps * this.#bucketMs
    if (steps > BUCKETS) steps = BUCKETS
    for (let i = 0; i < steps; i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS
      this.#deposits[this.#bucket] = 0
      this.#withdrawals[this.#bucket] = 0
    }
  }
}
