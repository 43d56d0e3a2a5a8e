/**
 * Adaptive concurrency after Netflix's Gradient2 (concurrency-limits): the limit follows the ratio
 * of a long-term latency average to the current one, and, a signal no sidecar sees, shrinks while
 * the event loop is late. Samples are grouped in windows of `window` ms; the limit moves once per
 * window, by the window's mean latency, from the clock passed in (so tests need no timers).
 */

export interface Gradient2Options {
  initialLimit: number
  minLimit: number
  maxLimit: number
  /** How much slower than the long-term average the current latency may be before the limit shrinks (1.5 = 50%). */
  tolerance: number
  /** Weight of each new estimate (0..1]. */
  smoothing: number
  /** Window length, ms. */
  window: number
  /** Windows in the long-term latency average. */
  longWindow: number
  /** Event-loop delay (ms) above which the limit shrinks in proportion; 0 = latency only. */
  eventLoopDelay: number
}

export const DEFAULT_GRADIENT2: Gradient2Options = Object.freeze({
  initialLimit: 20,
  minLimit: 1,
  maxLimit: 1000,
  tolerance: 1.5,
  smoothing: 0.2,
  window: 100,
  longWindow: 100,
  eventLoopDelay: 50,
})

/** Headroom added each window so the limit can grow and absorb jitter (Gradient2's queue size). */
const QUEUE_SIZE = 4

export class Gradient2Limit {
  readonly #o: Gradient2Options
  #limit: number
  #longRtt = 0
  #windowStart: number | undefined
  #sum = 0
  #count = 0
  #maxInflight = 0
  #dropped = false

  constructor(options: Partial<Gradient2Options> = {}) {
    this.#o = { ...DEFAULT_GRADIENT2, ...options }
    this.#limit = clamp(this.#o.initialLimit, this.#o.minLimit, this.#o.maxLimit)
  }

  /** The current limit (whole requests, at least minLimit). */
  get limit(): number {
    return Math.max(this.#o.minLimit, Math.floor(this.#limit))
  }

  /** The long-term latency average, ms (0 before the first window). */
  get longRtt(): number {
    return this.#longRtt
  }

  /** Notes that a request was refused for want of a permit in this window. */
  onDrop(): void {
    this.#dropped = true
  }

  /**
   * Records one finished request: `rtt` its run time in ms, `inflight` the permits out when it
   * started, `loopDelay` the current event-loop delay in ms. Returns true when the limit changed.
   */
  sample(now: number, rtt: number, inflight: number, loopDelay: number): boolean {
    this.#windowStart ??= now
    this.#sum += rtt
    this.#count++
    if (inflight > this.#maxInflight) this.#maxInflight = inflight
    if (now - this.#windowStart < this.#o.window) return false
    const before = this.limit
    this.#update(this.#sum / this.#count, loopDelay)
    this.#windowStart = now
    this.#sum = 0
    this.#count = 0
    this.#maxInflight = 0
    this.#dropped = false
    return this.limit !== before
  }

  #update(shortRtt: number, loopDelay: number): void {
    const o = this.#o
    const short = Math.max(shortRtt, 0.001)
    this.#longRtt = this.#longRtt === 0 ? short : this.#longRtt + (short - this.#longRtt) * (2 / (o.longWindow + 1))
    // After a long slow spell the average lags far behind; let it recover quickly once latency falls.
    if (this.#longRtt / short > 2) this.#longRtt *= 0.95
    const loopLate = o.eventLoopDelay > 0 && loopDelay > o.eventLoopDelay
    // App-limited: with under half the limit in use, latency says nothing about the limit.
    if (this.#maxInflight < this.#limit / 2 && !this.#dropped && !loopLate) return
    let gradient = clamp((o.tolerance * this.#longRtt) / short, 0.5, 1)
    if (loopLate) gradient = Math.min(gradient, Math.max(0.5, o.eventLoopDelay / loopDelay))
    // Room to grow only while the loop keeps up.
    const next = this.#limit * gradient + (loopLate ? 0 : QUEUE_SIZE)
    this.#limit = clamp(this.#limit * (1 - o.smoothing) + next * o.smoothing, o.minLimit, o.maxLimit)
  }
}

function clamp(v: number, min: number, max: number): number {
  return v < min ? min : v > max ? max : v
}
