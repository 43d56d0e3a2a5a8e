/**
 * The server side's shared state, one per mesh (`mesh.inbound`): whether it is ready and accepting
 * (the mesh's shutdown moves it), the calls in flight (drain waits for them), the load report, the
 * admission controller and the refusal counts. The server stack's roles read and move it
 * (`serverStack(gate)`); it never touches a socket and knows no transport.
 */
import { performance } from 'node:perf_hooks'
import type { AdmissionController, AdmissionSnapshot } from '../admission/admission-controller.js'
import type { Refusal } from '../admission/refusal.js'
import { RejectionCounter } from '../admission/rejection-counter.js'
import type { CallScope } from '../deadline/call-scope.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import { inboundDeadline } from './deadline-role.js'
import { drainingRefusal } from './drain-role.js'

/**
 * Response header carrying the server's load: `<load 0..1>; inflight=<n>`, and `; queue=<n>` with
 * a concurrency limit. The leading number is event-loop utilization, or with a concurrency limit
 * the larger of it and (running + queued) / limit; clients read only that number.
 */
export const LOAD_HEADER = 'meshlet-load'
/** Marks a refusal made before any processing: the client may retry it elsewhere, even a POST. */
export const REJECTED_HEADER = 'meshlet-rejected'
const ELU_SAMPLE_MS = 250

/** `gate.admit`'s answer: the deadline, or the refusal. */
export type Admission = { readonly ok: true; readonly deadline: number } | Refusal

export class InboundGate {
  #inflight = 0
  /** The scopes in flight, for `latestDeadline()`; calls counted without a scope are only in `#inflight`. */
  readonly #scopes = new Set<CallScope>()
  #ready = true
  #accepting = true
  #idle: (() => void) | undefined
  #load = '0.00; inflight=0'
  #elu = performance.eventLoopUtilization()
  #utilization = 0
  #sampler: NodeJS.Timeout | undefined
  readonly #metrics: MeshMetrics
  readonly service: string
  /** Refusals by reason, shared with the admission controller: `meshlet.admission.rejected` and inspect(). */
  readonly rejections: RejectionCounter
  /** Admission control (concurrency, queue, rate limit, shedding); undefined when not configured. */
  readonly admission: AdmissionController | undefined
  #loadInflight = -1
  #loadQueued = -1
  #loadOccupancy = -1
  #loadUtilization = -1

  constructor(service: string, metrics: MeshMetrics, admission?: AdmissionController) {
    this.service = service
    this.#metrics = metrics
    this.admission = admission
    this.rejections = admission?.rejections ?? new RejectionCounter(metrics)
  }

  /** False once draining began: readiness probes should fail and registries deregister. */
  get ready(): boolean {
    return this.#ready
  }

  /** False once the drain delay passed: new requests are refused. */
  get accepting(): boolean {
    return this.#accepting
  }

  get inflight(): number {
    return this.#inflight
  }

  get utilization(): number {
    return this.#utilization
  }

  /**
   * The drain and deadline decisions alone, for callers outside the server stack (which runs the
   * same code as its `drain` and `deadline` roles). Counts a refusal.
   */
  admit(deadlineHeader: string | string[] | undefined): Admission {
    const d = this.#accepting ? inboundDeadline(deadlineHeader, Infinity, Date.now(), this.service) : drainingRefusal(this.service)
    if (typeof d === 'number') return { ok: true, deadline: d }
    this.rejections.count(d.reason!)
    return d
  }

  /** Counts a call in flight until `leave()`; with its scope, its deadline counts for `latestDeadline()`. */
  enter(scope?: CallScope): void {
    if (scope !== undefined) this.#scopes.add(scope)
    if (this.#inflight++ === 0 && this.#sampler === undefined) this.#startSampling()
  }

  leave(scope?: CallScope): void {
    if (scope !== undefined) this.#scopes.delete(scope)
    if (--this.#inflight === 0 && this.#idle !== undefined) this.#idle()
  }

  /** The latest deadline of the calls in flight (ms since the epoch): Infinity if one has none, 0 when none runs. */
  latestDeadline(): number {
    let latest = 0
    for (const s of this.#scopes) if (s.deadline > latest) latest = s.deadline
    return latest
  }

  /**
   * The load header's value; refreshed by a sampler, so reading it costs nothing. With admission
   * control it is rebuilt when in-flight or queue depth changed, so a queue shows at once.
   */
  loadReport(): string {
    const a = this.admission
    if (a === undefined) return this.#load
    const queued = a.queued
    // Occupancy moves with the adaptive limit too, not only with in-flight and queue.
    const occupancy = a.occupancy
    if (queued !== this.#loadQueued || this.#inflight !== this.#loadInflight || occupancy !== this.#loadOccupancy || this.#utilization !== this.#loadUtilization) {
      this.#loadQueued = queued
      this.#loadInflight = this.#inflight
      this.#loadOccupancy = occupancy
      this.#loadUtilization = this.#utilization
      this.#load = `${Math.max(this.#utilization, occupancy).toFixed(2)}; inflight=${this.#inflight}; queue=${queued}`
    }
    return this.#load
  }

  /** Admission state and refusals by reason, for inspect(). */
  admissionSnapshot(): AdmissionSnapshot {
    if (this.admission !== undefined) return this.admission.snapshot()
    return { enabled: false, limit: null, adaptive: false, inflight: 0, queued: 0, queueLimit: 0, overloaded: false, eventLoopDelayMs: 0, rejected: this.rejections.snapshot() }
  }

  /**
   * Records one request. `status` 0 means no response status was sent; `errorType` marks a request
   * that ended in an error (its connection closed before the response was complete).
   */
  recordDuration(method: string, route: string | undefined, status: number, seconds: number, errorType?: string): void {
    const attrs = this.#metrics.attributes(`s:${method}:${route ?? ''}:${status}:${errorType ?? ''}`, () => ({
      'http.request.method': method,
      ...(status ? { 'http.response.status_code': status } : {}),
      ...(route !== undefined ? { 'http.route': route } : {}),
      ...(errorType !== undefined ? { 'error.type': errorType } : {}),
    }))
    this.#metrics.serverDuration.record(seconds, attrs)
  }

  /** Phase 1 of shutdown: not ready (peers stop choosing us) but still serving. */
  markNotReady(): void {
    this.#ready = false
  }

  /** Phase 2: refuse new requests. */
  stopAccepting(): void {
    this.#ready = false
    this.#accepting = false
    // Requests still waiting for a slot were not processed: refuse them now so callers go elsewhere.
    this.admission?.drain()
  }

  /** Resolves when no request is in flight, or after `timeoutMs`; returns how many were still running. */
  waitIdle(timeoutMs: number): Promise<number> {
    if (this.#inflight === 0) return Promise.resolve(0)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idle = undefined
        resolve(this.#inflight)
      }, timeoutMs)
      this.#idle = () => {
        clearTimeout(timer)
        this.#idle = undefined
        resolve(0)
      }
    })
  }

  close(): void {
    clearInterval(this.#sampler)
    this.#sampler = undefined
    this.admission?.close()
  }

  #startSampling(): void {
    this.#sampler = setInterval(() => {
      const next = performance.eventLoopUtilization()
      this.#utilization = performance.eventLoopUtilization(next, this.#elu).utilization
      this.#elu = next
      if (this.admission === undefined) this.#load = `${this.#utilization.toFixed(2)}; inflight=${this.#inflight}`
    }, ELU_SAMPLE_MS)
    this.#sampler.unref()
  }
}

/** Parses the utilization from a load header value; undefined when absent or malformed. */
export function parseLoadHeader(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  const u = Number.parseFloat(value)
  return u >= 0 && u <= 1 ? u : undefined
}
