/**
 * What the demo's driver (demo.ts) and its services (demo-web.ts, demo-orders.ts, demo-payments.ts)
 * share: the IPC messages between them, and the per-edge latency recorder.
 */
import type { MeshSnapshot } from '@meshlet/core'

/** Per-service configuration, sent to each child in its `start` message. */
export interface ServiceConfig {
  /** Instance name, e.g. `payments-b`. */
  instance: string
  /** Endpoint URLs of the service this one calls (web: orders, orders: payments). */
  upstream?: string[]
  /** payments only: extra latency and the share of requests that fail (half 503, half reset). */
  slowMs?: number
  failRate?: number
}

/** Latency and outcome summary of one edge, seen by its caller. */
export interface EdgeStats {
  calls: number
  errors: number
  p50: number
  p99: number
  max: number
  /** Outcome → count: an HTTP status or an error code. */
  outcomes: Record<string, number>
}

/** What the mesh told us through OpenTelemetry metrics (read from an in-memory exporter). */
export interface OtelSummary {
  /** http.client.request.duration: calls and failed calls (with `error.type`) per destination. */
  clientCalls: Record<string, { count: number; errors: number }>
  /** http.server.request.duration: requests per status code (or error.type when none was sent). */
  serverRequests: Record<string, number>
  /** meshlet.retries: sum per `meshlet.retry.outcome` (`sent`, or why a retry was not sent). */
  retries: Record<string, number>
  /** meshlet.endpoint.ejections */
  ejections: number
  /** meshlet.breaker.state transitions per new state. */
  breaker: Record<string, number>
}

/** What the mesh told us on diagnostics_channel. */
export interface MeshEvents {
  /** meshlet:retry: retries per endpoint whose failure caused them. */
  retriesAfter: Record<string, number>
  /** meshlet:endpoint:ejected; `at` is Date.now() (processes share the wall clock, not performance.now()). */
  ejected: { endpoint: string; durationMs: number; consecutiveFailures: number; at: number }[]
  /** meshlet:endpoint:restored */
  restored: { endpoint: string; at: number }[]
  /** meshlet:breaker:state */
  breaker: { state: string; at: number }[]
}

/** What a payments instance did itself (the ground truth for injected faults). */
export interface ServedStats {
  requests: number
  ok: number
  injected503: number
  injectedResets: number
}

export interface ServiceReport {
  instance: string
  /** The outbound edge this service calls, timed around each call. */
  edge?: EdgeStats
  otel: OtelSummary
  events: MeshEvents
  inspect: MeshSnapshot
  served?: ServedStats
}

export interface CloseReport {
  /** meshlet:drain phases with ms since close() began. */
  phases: string[]
  ms: number
}

export type ToChild = { type: 'start'; config: ServiceConfig } | { type: 'report' } | { type: 'close' }
export type FromChild = { type: 'loaded' } | { type: 'listening'; port: number } | { type: 'report'; report: ServiceReport } | { type: 'closed'; close: CloseReport } | { type: 'failed'; error: string }

/** The q-quantile (0..1) of ascending samples, nearest-rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

/** Records each call of one edge: its duration and outcome. */
export class EdgeRecorder {
  readonly #samples: number[] = []
  readonly #outcomes = new Map<string, number>()
  #errors = 0

  record(ms: number, outcome: string, ok: boolean): void {
    this.#samples.push(ms)
    this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1)
    if (!ok) this.#errors++
  }

  /** Times `call`; its result's outcome comes from `outcomeOf`, a thrown error's from its code. */
  async time<T>(call: () => Promise<T>, outcomeOf: (value: T) => { outcome: string; ok: boolean }): Promise<T> {
    const t0 = performance.now()
    try {
      const value = await call()
      const { outcome, ok } = outcomeOf(value)
      this.record(performance.now() - t0, outcome, ok)
      return value
    } catch (err) {
      this.record(performance.now() - t0, errorCode(err), false)
      throw err
    }
  }

  stats(): EdgeStats {
    const sorted = [...this.#samples].sort((a, b) => a - b)
    return {
      calls: sorted.length,
      errors: this.#errors,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? 0,
      outcomes: Object.fromEntries(this.#outcomes),
    }
  }
}

export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined
  const code = e?.code ?? e?.cause?.code
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'Error'
}
