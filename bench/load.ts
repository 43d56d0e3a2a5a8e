/**
 * Load generation and latency statistics: one sample histogram, a closed loop (fixed concurrency,
 * bounded by time and count) and an open loop (fixed arrival rate, bounded by count).
 */

/** Sends one request and resolves with its status code once the body is consumed. */
export type Send = () => Promise<number>

/** Exact percentiles over recorded samples (ms). Bounded: past `max` samples, later ones are counted but not kept. */
export class Histogram {
  #v = new Float64Array(1 << 14)
  #n = 0
  #sorted = true
  #dropped = 0

  constructor(readonly max = 1 << 23) {}

  get count(): number {
    return this.#n + this.#dropped
  }

  record(ms: number): void {
    if (this.#n === this.#v.length) {
      if (this.#n >= this.max) {
        this.#dropped++
        return
      }
      const grown = new Float64Array(Math.min(this.#v.length * 2, this.max))
      grown.set(this.#v)
      this.#v = grown
    }
    this.#v[this.#n++] = ms
    this.#sorted = false
  }

  merge(other: Histogram): this {
    for (const x of other.#v.subarray(0, other.#n)) this.record(x)
    return this
  }

  /** The p-th percentile (0..100) in ms, nearest-rank; NaN when empty. */
  percentile(p: number): number {
    if (this.#n === 0) return NaN
    if (!this.#sorted) {
      this.#v.subarray(0, this.#n).sort()
      this.#sorted = true
    }
    const rank = Math.min(this.#n - 1, Math.max(0, Math.ceil((p / 100) * this.#n) - 1))
    return this.#v[rank]!
  }

  mean(): number {
    let sum = 0
    for (const x of this.#v.subarray(0, this.#n)) sum += x
    return this.#n === 0 ? NaN : sum / this.#n
  }
}

export interface LoadResult {
  requests: number
  errors: number
  seconds: number
  /** CPU time this process used during the run (user + system), ms. */
  cpuMs: number
  hist: Histogram
  /** Error kinds (code or status) and their counts. */
  errorKinds: Record<string, number>
}

function errorKind(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown }
  return String(e.code ?? e.name ?? e.message ?? err)
}

/** Runs one request, recording its latency or its failure into `r`. */
async function timed(send: Send, r: LoadResult): Promise<void> {
  const t0 = performance.now()
  try {
    const status = await send()
    r.hist.record(performance.now() - t0)
    if (status < 200 || status > 299) {
      r.errors++
      r.errorKinds[`HTTP ${status}`] = (r.errorKinds[`HTTP ${status}`] ?? 0) + 1
    }
  } catch (err) {
    r.errors++
    const k = errorKind(err)
    r.errorKinds[k] = (r.errorKinds[k] ?? 0) + 1
  }
}

function newResult(): LoadResult {
  return { requests: 0, errors: 0, seconds: 0, cpuMs: 0, hist: new Histogram(), errorKinds: {} }
}

/** `concurrency` workers each send back to back until `seconds` pass or `requests` were started. */
export async function closedLoop(send: Send, o: { concurrency: number; seconds?: number; requests?: number }): Promise<LoadResult> {
  const r = newResult()
  const maxRequests = o.requests ?? Number.MAX_SAFE_INTEGER
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const end = t0 + (o.seconds ?? 600) * 1000
  const worker = async (): Promise<void> => {
    while (r.requests < maxRequests && performance.now() < end) {
      r.requests++
      await timed(send, r)
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, worker))
  r.seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  r.cpuMs = (cpu.user + cpu.system) / 1000
  return r
}

/**
 * Starts `rate` requests a second for `seconds`, whatever the responses do (no coordinated
 * omission); a request that would exceed `maxInflight` is not sent and counted as an error.
 * `onTick(elapsedMs)` runs every tick so a scenario can act on a schedule.
 */
export async function openLoop(send: Send, o: { rate: number; seconds: number; maxInflight: number; onTick?: (elapsedMs: number) => void }): Promise<LoadResult> {
  const r = newResult()
  const total = Math.round(o.rate * o.seconds)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let inflight = 0
  let done!: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  const settle = (): void => {
    inflight--
    if (inflight === 0 && r.requests === total) done()
  }
  const tick = (): void => {
    const elapsed = performance.now() - t0
    o.onTick?.(elapsed)
    const due = Math.min(total, Math.floor((elapsed / 1000) * o.rate))
    while (r.requests < due) {
      r.requests++
      if (inflight >= o.maxInflight) {
        r.errors++
        r.errorKinds['generator: too many in flight'] = (r.errorKinds['generator: too many in flight'] ?? 0) + 1
        continue
      }
      inflight++
      void timed(send, r).then(settle)
    }
    if (r.requests === total) {
      clearInterval(timer)
      if (inflight === 0) done()
    }
  }
  const timer = setInterval(tick, 2)
  // Responses still missing this long after the last send count as errors.
  let giveUp: NodeJS.Timeout | undefined
  const drained = new Promise<void>((resolve) => (giveUp = setTimeout(resolve, o.seconds * 1000 + 30_000)))
  await Promise.race([finished, drained])
  clearTimeout(giveUp)
  clearInterval(timer)
  if (inflight > 0) {
    r.errors += inflight
    r.errorKinds['no response within 30 s'] = inflight
  }
  r.seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  r.cpuMs = (cpu.user + cpu.system) / 1000
  return r
}
