/**
 * The balancer of one destination: owns endpoint state, applies resolver changes, ejects outliers,
 * and publishes an immutable picker snapshot (the ready endpoints, same-zone first) that calls read
 * without locking or copying.
 */
import type { BalancerPolicy, OutlierPolicy } from '../config/mesh-options.js'
import type { EndpointChange } from '../discovery/resolver.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import { Classification } from '../stack/response-classifier.js'
import type { CallContext } from '../client/call-context.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import { EndpointState } from './endpoint-state.js'
import { strategyFor, type PickStrategy } from './balancer-strategies.js'

/** Reported utilization at which a zone counts as overloaded, so calls spill to other zones. */
const LOCAL_OVERLOAD = 0.8

/** Calls that may wait for a first endpoint at once; more fail at once with NO_ENDPOINT. */
const MAX_COLD_WAITERS = 1000

export interface EndpointSnapshot {
  url: string
  zone: string | undefined
  revision: string | undefined
  latencyMs: number
  inflight: number
  requests: number
  failures: number
  consecutiveFailures: number
  ejected: boolean
  ejectedForMs: number
  ejections: number
  reportedLoad: number
}

export class Balancer {
  readonly service: string
  readonly #endpoints = new Map<string, EndpointState>()
  #policy: BalancerPolicy
  #outlier: OutlierPolicy | false
  #strategy: PickStrategy
  readonly #zone: string | undefined
  readonly #metrics: MeshMetrics
  /** The picker snapshot: ready endpoints, replaced (never mutated) on every change. */
  #ready: readonly EndpointState[] = []
  /** The ready endpoints in this mesh's zone (empty when zones are unknown or none is local). */
  #local: readonly EndpointState[] = []
  #ejectedCount = 0
  readonly #timers = new Set<NodeJS.Timeout>()
  #sweep: NodeJS.Timeout | undefined
  #closed = false
  /** Calls waiting for a first endpoint (cold start), woken in arrival order. */
  readonly #waiters = new Set<(ok: boolean) => void>()

  constructor(service: string, policy: BalancerPolicy, outlier: OutlierPolicy | false, zone: string | undefined, metrics: MeshMetrics) {
    this.service = service
    this.#policy = policy
    this.#outlier = outlier
    this.#strategy = strategyFor(policy.type, policy.decay, policy.loadFactor)
    this.#zone = zone
    this.#metrics = metrics
    this.#startSweep()
  }

  /**
   * Applies a new balancing and outlier policy to the live endpoint set: endpoint state (latency,
   * in-flight, current ejections) is kept; new picks use the new rule at once.
   */
  configure(policy: BalancerPolicy, outlier: OutlierPolicy | false): void {
    if (policy.type !== this.#policy.type || policy.decay !== this.#policy.decay) this.#strategy = strategyFor(policy.type, policy.decay, policy.loadFactor)
    this.#policy = policy
    const interval = this.#outlier ? this.#outlier.interval : undefined
    this.#outlier = outlier
    if ((outlier ? outlier.interval : undefined) !== interval) {
      clearInterval(this.#sweep)
      this.#sweep = undefined
      this.#startSweep()
    }
  }

  #startSweep(): void {
    if (!this.#outlier || this.#closed) return
    this.#sweep = setInterval(() => this.#decayEjections(), this.#outlier.interval)
    this.#sweep.unref()
  }

  get size(): number {
    return this.#endpoints.size
  }

  /** True when discovery knows no endpoint at all (not merely none ready). */
  get empty(): boolean {
    return this.#endpoints.size === 0
  }

  /**
   * Resolves when the first endpoint appears; rejects with `noEndpoint` (the caller's error) once
   * `timeLeft` ms (the caller's, on its own clock) have passed or on `signal`, or at once when
   * MAX_COLD_WAITERS calls are already waiting or no time bound is given.
   */
  waitForEndpoint(timeLeft: number, signal: AbortSignal | undefined, noEndpoint: Error): Promise<void> {
    if (this.#waiters.size >= MAX_COLD_WAITERS || !Number.isFinite(timeLeft) || this.#closed) return Promise.reject(noEndpoint)
    return new Promise((resolve, reject) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#waiters.delete(done)
        if (ok) resolve()
        else reject(noEndpoint)
      }
      const onAbort = () => done(false)
      const timer = setTimeout(onAbort, Math.max(0, timeLeft))
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiters.add(done)
    })
  }

  applyChanges(changes: readonly EndpointChange[]): void {
    for (const change of changes) {
      if (change.type === 'insert') {
        if (!this.#endpoints.has(change.endpoint.url)) this.#endpoints.set(change.endpoint.url, new EndpointState(change.endpoint))
      } else {
        const e = this.#endpoints.get(change.url)
        if (e === undefined) continue
        this.#endpoints.delete(change.url)
        if (e.ejectedUntil !== 0) this.#ejectedCount--
        void e.closeResources()
      }
    }
    this.#rebuild()
    publish(channels.endpointsChanged, () => ({ service: this.service, endpoints: [...this.#endpoints.keys()] }))
  }

  /**
   * Chooses the endpoint for one attempt, avoiding endpoints this call already tried while any
   * other is ready. `usable` lets a transport with its own connectivity (gRPC subchannels) steer
   * picks to the endpoints it can use now, while any is. Throws MESHLET_ERR_NO_ENDPOINT
   * (retryable: discovery may catch up).
   */
  pick(ctx: CallContext, usable?: (e: EndpointState) => boolean): EndpointState {
    let ready = this.#ready
    if (ready.length === 0) throw this.#noEndpoint()
    // Same zone first while it is not overloaded: when every local endpoint reports itself busy,
    // calls spill over to the other zones.
    const local = this.#local
    if (local.length > 0 && local.some((e) => e.reportedLoad < LOCAL_OVERLOAD)) ready = local
    if (usable !== undefined && ready.length > 1) {
      const connected = ready.filter(usable)
      if (connected.length > 0) ready = connected
    }
    // A routed revision is preferred; with no ready endpoint of it the call goes to any revision
    // (documented fallback: a canary that is not up must not turn into an error storm).
    const revision = ctx.revision
    if (revision !== undefined) {
      const mine = ready.filter((e) => e.address.revision === revision)
      if (mine.length > 0) ready = mine
    }
    const tried = ctx.tried
    if (tried !== undefined && ready.length > 1) {
      const fresh = ready.filter((e) => !tried.includes(e))
      if (fresh.length > 0) ready = fresh
    }
    return this.#strategy(ready, performance.now(), ctx.hashKey)
  }

  /** A ready endpoint of `revision` for a mirrored copy, or undefined: mirrors never fall back. */
  pickShadow(revision: string): EndpointState | undefined {
    const mine = this.#ready.filter((e) => e.address.revision === revision)
    return mine.length === 0 ? undefined : mine[(Math.random() * mine.length) | 0]
  }

  /** Feeds one attempt's outcome into latency, failure counts and outlier detection. */
  record(e: EndpointState, cls: Classification, rttMs: number): void {
    e.requests++
    if (cls === Classification.Success) {
      e.consecutiveFailures = 0
      e.observe(rttMs, performance.now(), this.#policy.decay)
      return
    }
    if (cls === Classification.Ignorable) return
    e.failures++
    e.recentFailures++
    e.consecutiveFailures++
    // A failure is charged at least the penalty, so an endpoint that fails fast does not look fast.
    e.observe(Math.max(rttMs, this.#policy.failurePenalty), performance.now(), this.#policy.decay)
    if (this.#outlier && e.ejectedUntil === 0 && e.consecutiveFailures >= this.#outlier.consecutiveFailures) this.#eject(e, this.#outlier)
  }

  /** The request header that keys a ring-hash pick, when this destination balances by one. */
  get hashHeader(): string | undefined {
    return this.#policy.type === 'ring-hash' ? this.#policy.hashHeader : undefined
  }

  /** Records the load a server reported (utilization 0..1). */
  reportLoad(e: EndpointState, utilization: number): void {
    e.reportedLoad = utilization > 0 ? Math.min(utilization, 1) : 0
  }

  snapshot(): EndpointSnapshot[] {
    const now = performance.now()
    return [...this.#endpoints.values()].map((e) => ({
      url: e.url,
      zone: e.address.zone,
      revision: e.address.revision,
      latencyMs: Math.round(e.latency(now, this.#policy.decay) * 1000) / 1000,
      inflight: e.inflight,
      requests: e.requests,
      failures: e.failures,
      consecutiveFailures: e.consecutiveFailures,
      ejected: e.ejectedUntil !== 0,
      ejectedForMs: e.ejectedUntil === 0 ? 0 : Math.max(0, Math.round(e.ejectedUntil - now)),
      ejections: e.ejections,
      reportedLoad: e.reportedLoad,
    }))
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const w of [...this.#waiters]) w(false)
    clearInterval(this.#sweep)
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    const all = [...this.#endpoints.values()]
    this.#endpoints.clear()
    this.#ready = []
    this.#local = []
    await Promise.allSettled(all.map((e) => e.closeResources()))
  }

  #eject(e: EndpointState, outlier: OutlierPolicy): void {
    // A call still in flight to a removed endpoint may fail late; ejecting it would hold a slot for good.
    if (this.#endpoints.get(e.url) !== e) return
    const n = this.#endpoints.size
    // At least one of two or three may go, but never all: a mesh that ejects everything serves nothing.
    const max = Math.min(n - 1, Math.max(1, Math.floor((n * outlier.maxEjectionPercent) / 100)))
    if (this.#ejectedCount >= max || outlier.maxEjectionPercent === 0) return
    e.ejections++
    const duration = Math.min(outlier.baseEjectionTime * e.ejections, Math.max(outlier.maxEjectionTime, outlier.baseEjectionTime))
    e.ejectedUntil = performance.now() + duration
    this.#ejectedCount++
    this.#rebuild()
    this.#metrics.ejections.add(1, this.#metrics.attributes(`ej:${this.service}`, () => ({ 'meshlet.destination': this.service })))
    publish(channels.endpointEjected, () => ({ service: this.service, endpoint: e.url, durationMs: duration, ejections: e.ejections, consecutiveFailures: e.consecutiveFailures }))
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#closed || this.#endpoints.get(e.url) !== e) return
      e.ejectedUntil = 0
      e.consecutiveFailures = 0
      this.#ejectedCount--
      this.#rebuild()
      publish(channels.endpointRestored, () => ({ service: this.service, endpoint: e.url, ejections: e.ejections }))
    }, duration)
    timer.unref()
    this.#timers.add(timer)
  }

  /** Each sweep, an endpoint that stayed healthy works off one repeat-ejection multiplier (Envoy). */
  #decayEjections(): void {
    for (const e of this.#endpoints.values()) {
      if (e.ejectedUntil === 0 && e.recentFailures === 0 && e.ejections > 0) e.ejections--
      e.recentFailures = 0
    }
  }

  #rebuild(): void {
    const ready: EndpointState[] = []
    const local: EndpointState[] = []
    for (const e of this.#endpoints.values()) {
      if (e.ejectedUntil !== 0) continue
      ready.push(e)
      if (this.#zone !== undefined && e.address.zone === this.#zone) local.push(e)
    }
    this.#ready = Object.freeze(ready)
    this.#local = Object.freeze(local.length < ready.length ? local : [])
    if (ready.length > 0 && this.#waiters.size > 0) for (const w of [...this.#waiters]) w(true)
  }

  #noEndpoint(): MeshletError {
    const n = this.#endpoints.size
    const why = n === 0 ? 'discovery has found no endpoint for it yet (check its `endpoints` or that instances are registered)' : `all ${n} endpoint(s) are ejected`
    return new MeshletError(ErrorCodes.NO_ENDPOINT, `No endpoint is available for service "${this.service}": ${why}.`, {
      retryable: true,
      details: { service: this.service, endpoints: n, ejected: this.#ejectedCount },
    })
  }
}
