/**
 * Server-side admission, in this order: priority paths pass untouched → shed when overloaded →
 * local rate limit (server bucket, then the caller's) → concurrency limit with its FIFO queue.
 * Transport-agnostic: `decide` answers at once (pass, permit, refusal, or wait), `enqueue` queues a
 * request that must wait and answers it later through an AdmissionWaiter. The server stack's
 * `admission` role drives it; `acquire` is both in one call.
 */
import { ErrorCodes, MeshletError } from '../errors.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import { resolveAdmission, type AdmissionOptions, type AdmissionSettings, type CallerInfo } from './admission-options.js'
import { ConcurrencyLimiter, type QueueEntry, type QueueExit } from './concurrency-limiter.js'
import { Gradient2Limit } from './gradient2-limit.js'
import { LoadShedder } from './load-shedder.js'
import type { Refusal } from './refusal.js'
import { RejectionCounter } from './rejection-counter.js'
import { CallerBuckets, TokenBucket, type Clock } from './token-bucket.js'

export type { Refusal } from './refusal.js'

/**
 * `decide`'s answer: `pass` (runs, holds no permit: a priority path or no concurrency limit),
 * `permit` (runs holding a permit: `release()` it once when it ends), `wait` (no free permit: call
 * `enqueue`), or the refusal.
 */
export type AdmissionDecision = 'pass' | 'permit' | 'wait' | Refusal

export interface AdmissionWaiter {
  /**
   * The request may run. `permit` true: it holds a concurrency permit and the adapter must call
   * `release()` exactly once when it ends (response finished or connection closed).
   */
  start(permit: boolean): void
  /** The request must not run; answer it with this refusal. */
  refuse(refusal: Refusal): void
}

export interface AdmissionSnapshot {
  /** False when no `admission` option was given: only drain and deadline refusals happen. */
  enabled: boolean
  /** The concurrency limit now (moves with `adaptive`); null without one. */
  limit: number | null
  adaptive: boolean
  /** Requests holding a concurrency permit. */
  inflight: number
  queued: number
  queueLimit: number
  overloaded: boolean
  /** Event-loop delay of the last sample, ms (0 unless shedding or adaptive is on). */
  eventLoopDelayMs: number
  rejected: Record<string, number>
}

export class AdmissionController {
  readonly settings: AdmissionSettings
  readonly rejections: RejectionCounter
  readonly #service: string
  readonly #metrics: MeshMetrics
  /** The clock (ms, monotonic) of the rate limit and adaptive windows; run times given to `release` must come from it. */
  readonly clock: Clock
  readonly #limiter: ConcurrencyLimiter | undefined
  readonly #adaptive: Gradient2Limit | undefined
  readonly #shedder: LoadShedder | undefined
  readonly #bucket: TokenBucket | undefined
  readonly #callers: CallerBuckets | undefined

  /** `clock` (ms, monotonic) drives the rate limit and adaptive windows; tests inject one. */
  constructor(service: string, options: AdmissionOptions, metrics: MeshMetrics, clock: Clock = () => performance.now()) {
    const st = (this.settings = resolveAdmission(options))
    this.#service = service
    this.#metrics = metrics
    this.clock = clock
    this.rejections = new RejectionCounter(metrics)
    if (st.concurrency !== undefined) this.#limiter = new ConcurrencyLimiter(st.concurrency.limit, st.concurrency.queue, st.concurrency.queueTimeout)
    if (st.adaptive !== undefined) this.#adaptive = new Gradient2Limit(st.adaptive)
    if (st.shedding !== undefined || st.adaptive !== undefined) this.#shedder = new LoadShedder(st.shedding ?? { eventLoopDelay: Infinity, utilization: Infinity, interval: 100 })
    if (st.rateLimit !== undefined) this.#bucket = new TokenBucket(st.rateLimit.rps, st.rateLimit.burst, clock)
    if (st.perCaller !== undefined) this.#callers = new CallerBuckets(st.perCaller.rps, st.perCaller.burst, clock)
    // Sampling starts now, not with the first request: the delay histogram ignores its first period,
    // so a block right after a lazy start would go unseen. Its timers are unref'd; close() stops them.
    this.#shedder?.start()
  }

  /** Whether `acquire` wants the caller described (only a per-caller rate limit does). */
  get wantsCaller(): boolean {
    return this.#callers !== undefined
  }

  /** Permits out plus requests waiting, over the limit (0..1); 0 without a limit. */
  get occupancy(): number {
    const l = this.#limiter
    return l === undefined ? 0 : Math.min(1, (l.inflight + l.queued) / l.limit)
  }

  get queued(): number {
    return this.#limiter?.queued ?? 0
  }

  /**
   * Decides on one request at once. The waiter hears `start` or `refuse` exactly once; a returned
   * entry means it waits in the queue: pass it to `cancel()` if the request goes away meanwhile.
   */
  acquire(path: string, caller: CallerInfo | undefined, deadline: number, waiter: AdmissionWaiter): QueueEntry | undefined {
    const d = this.decide(path, caller)
    if (d === 'pass' || d === 'permit') return void waiter.start(d === 'permit')
    if (d !== 'wait') return void waiter.refuse(d)
    const entry = this.enqueue(deadline, waiter)
    if ('ok' in entry) return void waiter.refuse(entry)
    return entry
  }

  /** Decides what can be decided now; `caller` is read only when `wantsCaller`. Counts a refusal. */
  decide(path: string, caller: CallerInfo | undefined): AdmissionDecision {
    if (this.#isPriority(path)) return 'pass'
    if (this.#shedder !== undefined && this.settings.shedding !== undefined && this.#shedder.overloaded) {
      return this.#overloaded('overload', `"${this.#service}" is overloaded (event-loop delay ${Math.round(this.#shedder.delay)}ms, utilization ${this.#shedder.utilization.toFixed(2)}) and shed the request before processing it; retry on another instance.`)
    }
    if (this.#bucket !== undefined) {
      const wait = this.#bucket.take()
      if (wait > 0) return this.#rateLimited('rate_limit', wait, `"${this.#service}" is over its rate limit of ${this.#bucket.rate}/s`)
    }
    if (this.#callers !== undefined) {
      const key = this.settings.perCaller!.key(caller ?? { headers: {}, remoteAddress: undefined })
      if (key !== undefined) {
        const wait = this.#callers.take(key)
        if (wait > 0) return this.#rateLimited('rate_limit_caller', wait, `This caller is over its rate limit of ${this.settings.perCaller!.rps}/s at "${this.#service}"`)
      }
    }
    const limiter = this.#limiter
    if (limiter === undefined) return 'pass'
    return limiter.tryAcquire() ? 'permit' : 'wait'
  }

  /**
   * Queues a request `decide` told to wait. Returns its queue entry (the waiter hears `start(true)`
   * or `refuse` later, never synchronously), or the refusal when the queue is full.
   */
  enqueue(deadline: number, waiter: AdmissionWaiter): QueueEntry | Refusal {
    const limiter = this.#limiter!
    const entry = limiter.enqueue(deadline, {
      grant: (waited) => {
        this.#recordWait(waited, 'granted')
        waiter.start(true)
      },
      expire: (why, waited) => {
        this.#recordWait(waited, why)
        waiter.refuse(this.#fromQueue(why, waited))
      },
    })
    if (entry !== undefined) return entry
    this.#adaptive?.onDrop()
    const msg = `"${this.#service}" is at its concurrency limit (${limiter.limit} running, ${limiter.queued} waiting, queue of ${limiter.queueLimit}) and refused the request before processing it; retry on another instance.`
    return this.#overloaded('concurrency', msg)
  }

  /** A queued request's client went away: it leaves the queue (not counted as a rejection). */
  cancel(entry: QueueEntry): void {
    this.#limiter?.cancel(entry)
  }

  /** Returns a permit; `runMs` is how long the request ran (feeds adaptive concurrency; omit it for a request that never ran). */
  release(runMs?: number): void {
    const limiter = this.#limiter
    if (limiter === undefined) return
    const adaptive = this.#adaptive
    if (adaptive !== undefined && runMs !== undefined && adaptive.sample(this.clock(), runMs, limiter.inflight, this.#shedder?.delay ?? 0)) limiter.setLimit(adaptive.limit)
    limiter.release()
  }

  /** Every waiting request is refused as draining (503, not processed). */
  drain(): void {
    this.#limiter?.drain()
  }

  snapshot(): AdmissionSnapshot {
    const l = this.#limiter
    return {
      enabled: true,
      limit: l?.limit ?? null,
      adaptive: this.#adaptive !== undefined,
      inflight: l?.inflight ?? 0,
      queued: l?.queued ?? 0,
      queueLimit: l?.queueLimit ?? 0,
      overloaded: this.settings.shedding !== undefined && this.#shedder!.overloaded,
      eventLoopDelayMs: Math.round((this.#shedder?.delay ?? 0) * 10) / 10,
      rejected: this.rejections.snapshot(),
    }
  }

  close(): void {
    this.#shedder?.close()
  }

  /** Exact path or a path under the prefix: `/healthz` matches `/healthz`, `/healthz/live`, `/healthz?full`, not `/healthzz`. */
  #isPriority(path: string): boolean {
    for (const p of this.settings.priorityPaths) {
      if (!path.startsWith(p)) continue
      const next = path.charCodeAt(p.length)
      if (Number.isNaN(next) || p.endsWith('/') || next === 0x2f || next === 0x3f) return true
    }
    return false
  }

  #recordWait(waitedMs: number, outcome: string): void {
    this.#metrics.admissionQueueDuration.record(waitedMs / 1000, this.#metrics.attributes(`aq:${outcome}`, () => ({ 'meshlet.admission.outcome': outcome })))
  }

  #overloaded(reason: string, message: string): Refusal {
    this.rejections.count(reason)
    return { ok: false, status: 503, error: new MeshletError(ErrorCodes.OVERLOADED, message, { rejected: true, retryable: true }), rejected: true, reason }
  }

  #rateLimited(reason: string, waitMs: number, what: string): Refusal {
    this.rejections.count(reason)
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000))
    const error = new MeshletError(ErrorCodes.RATE_LIMITED, `${what}; the request was not processed. Retry after ${retryAfter}s.`, { rejected: true, retryable: true, details: { retryAfterMs: waitMs } })
    return { ok: false, status: 429, error, rejected: true, reason, retryAfter }
  }

  #fromQueue(why: QueueExit, waitedMs: number): Refusal {
    switch (why) {
      case 'deadline':
        this.rejections.count('deadline')
        return { ok: false, status: 504, error: new MeshletError(ErrorCodes.DEADLINE, `The caller's deadline passed after ${waitedMs}ms in "${this.#service}"'s admission queue; the request was not processed.`), rejected: false, reason: 'deadline' }
      case 'queue_timeout':
        return this.#overloaded('queue_timeout', `"${this.#service}" kept the request ${waitedMs}ms in its admission queue without a free slot (queue timeout ${this.#limiter!.queueTimeout}ms) and did not process it; retry on another instance.`)
      case 'draining':
        this.rejections.count('draining')
        return { ok: false, status: 503, error: new MeshletError(ErrorCodes.DRAINING, `Service "${this.#service}" began shutting down while the request waited in its admission queue; it was not processed, retry on another instance.`, { rejected: true, retryable: true }), rejected: true, reason: 'draining' }
    }
  }
}
