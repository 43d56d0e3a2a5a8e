/**
 * Overload detection for shedding: event-loop delay (perf_hooks monitorEventLoopDelay, the longest
 * delay in each sampling interval: with ~10 timer periods per interval a percentile would hide a
 * block) and event-loop utilization, compared with thresholds once per interval.
 * Between samples a late sampler is itself the signal: when the interval timer is overdue by more
 * than the delay threshold, the loop is blocked right now and requests read from the socket after
 * the block are shed before the next sample could say so.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'

export interface LoadShedderOptions {
  /** Event-loop delay (ms) above which requests are shed; Infinity to ignore delay. */
  eventLoopDelay: number
  /** Event-loop utilization (0..1) above which requests are shed; Infinity to ignore it. */
  utilization: number
  /** Sampling interval, ms. */
  interval: number
}

const RESOLUTION_MS = 10

export class LoadShedder {
  readonly #o: LoadShedderOptions
  // Two histograms read in turn: a reset histogram ignores its first period (it has no previous
  // timestamp), so a block right after a reset would go unseen. The one read was reset two samples
  // ago and covers the whole last interval; a block shows for one or two samples.
  #histograms: [IntervalHistogram, IntervalHistogram] | undefined
  #turn = 0
  #timer: NodeJS.Timeout | undefined
  #lastTick = 0
  #elu = performance.eventLoopUtilization()
  #delay = 0
  #utilization = 0
  #overloaded = false

  constructor(options: LoadShedderOptions) {
    this.#o = options
  }

  /** Event-loop delay of the last interval (the longest, ms). */
  get delay(): number {
    return this.#delay
  }

  get utilization(): number {
    return this.#utilization
  }

  /** True while the last sample was over a threshold, or while the sampler itself is overdue. */
  get overloaded(): boolean {
    if (this.#overloaded) return true
    return this.#timer !== undefined && performance.now() - this.#lastTick > this.#o.interval + this.#o.eventLoopDelay
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#histograms = [monitorEventLoopDelay({ resolution: RESOLUTION_MS }), monitorEventLoopDelay({ resolution: RESOLUTION_MS })]
    for (const h of this.#histograms) h.enable()
    this.#lastTick = performance.now()
    this.#elu = performance.eventLoopUtilization()
    this.#timer = setInterval(() => this.sample(), this.#o.interval)
    this.#timer.unref()
  }

  /** Takes one sample now (the interval timer calls it; tests may too). */
  sample(): void {
    const now = performance.now()
    const h = this.#histograms?.[this.#turn]
    this.#turn ^= 1
    // The histogram records whole timer periods; the delay is what exceeds the resolution. The
    // sampler's own lateness covers a block longer than the histogram's view of this interval.
    const histogramDelay = h === undefined || h.count === 0 ? 0 : Math.max(0, h.max / 1e6 - RESOLUTION_MS)
    const late = Math.max(0, now - this.#lastTick - this.#o.interval)
    this.#delay = Math.max(histogramDelay, late)
    h?.reset()
    const elu = performance.eventLoopUtilization()
    this.#utilization = performance.eventLoopUtilization(elu, this.#elu).utilization
    this.#elu = elu
    this.#lastTick = now
    this.#overloaded = this.#delay > this.#o.eventLoopDelay || this.#utilization > this.#o.utilization
  }

  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    for (const h of this.#histograms ?? []) h.disable()
    this.#histograms = undefined
  }
}
