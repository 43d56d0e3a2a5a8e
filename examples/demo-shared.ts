/**
 * What the demo's driver (demo.ts) and its services (demo-web.ts, demo-orders.ts, demo-payments.ts)
 * share: the IPC messages between them, and the recorders of calls and served requests, which keep
 * the wall-clock time of each so that the driver can split the run into windows (before and after
 * the policy change) afterwards.
 */
import type { MeshSnapshot } from '@meshlet/core'

/** Per-service configuration, sent to each child in its `start` message. */
export interface ServiceConfig {
  /** Instance name, e.g. `payments-b`. */
  instance: string
  /** The control endpoint's URL and its join token: where the service registers and finds the ones it calls. */
  control: string
  token: string
  /** The service this one calls, and how many of its instances the control endpoint must have shown it before it reports itself started. */
  upstream?: { service: string; instances: number }
  /** payments only: extra latency and the share of calls that fail (half UNAVAILABLE, half INTERNAL). */
  slowMs?: number
  failRate?: number
}

/** A span of the run in Date.now() milliseconds, [from, to): processes share the wall clock. */
export interface Window {
  name: string
  from: number
  to: number
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
  /** rpc.client.call.duration: gRPC calls (retries inside) and failed calls per destination. */
  rpcClientCalls: Record<string, { count: number; errors: number }>
  /** rpc.server.call.duration: gRPC calls served per status name. */
  rpcServerCalls: Record<string, number>
  /** meshlet.endpoint.ejections */
  ejections: number
  /** meshlet.breaker.state transitions per new state. */
  breaker: Record<string, number>
}

/** What the mesh told us on diagnostics_channel; every `at` is Date.now(). */
export interface MeshEvents {
  /** meshlet:endpoint:ejected */
  ejected: { endpoint: string; durationMs: number; consecutiveFailures: number; at: number }[]
  /** meshlet:endpoint:restored */
  restored: { endpoint: string; at: number }[]
  /** meshlet:breaker:state */
  breaker: { state: string; at: number }[]
  /** meshlet:config:applied and meshlet:config:rejected: policy updates, from the control endpoint here. */
  config: { event: 'applied' | 'rejected'; service: string; source: string; detail?: string; at: number }[]
}

/** What a payments instance did itself (the ground truth for attempts, retries and injected faults). */
export interface ServedStats {
  /** Attempts that reached the handler. */
  requests: number
  /** Of those, the ones sent as retries (`grpc-previous-rpc-attempts` ≥ 1). */
  retries: number
  ok: number
  injectedUnavailable: number
  injectedInternal: number
}

/** One window of a service's run. */
export interface WindowReport {
  /** Its outbound edge's calls that started in the window. */
  edge?: EdgeStats
  /** payments: attempts that arrived in the window. */
  served?: ServedStats
}

export interface ServiceReport {
  instance: string
  /** The outbound edge this service calls, timed around each call. */
  edge?: EdgeStats
  otel: OtelSummary
  events: MeshEvents
  inspect: MeshSnapshot
  served?: ServedStats
  /** The same, per window the driver asked for. */
  windows: WindowReport[]
  /** CloudEvents this service published (orders) or handled (notifications). */
  cloudEvents?: CloudEventCounts
}

/** notifications' trigger: its name, and its filter in CloudEvents SQL (only orders of 50 or more; web's amounts run 10–99). */
export const NOTIFY_TRIGGER = 'notify-big-orders'
export const NOTIFY_FILTER = "type = 'shop.order.created' AND amount >= 50"

export interface CloudEventCounts {
  /** orders: `shop.order.created` events the broker acknowledged, failed publishes, and how many of them the trigger's filter matches. */
  published?: number
  publishFailed?: number
  /** Publishes not yet answered when the counts were taken. */
  publishPending?: number
  matching?: number
  /** notifications: deliveries its trigger handler got, and how many repeated an event (same source and id) it had already handled. */
  received?: number
  duplicates?: number
}

export interface CloseReport {
  /** Date.now() when close() began (the not-ready phase). */
  startedAt: number
  /** meshlet:drain phases with ms since close() began. */
  phases: string[]
  ms: number
}

export type ToChild = { type: 'start'; config: ServiceConfig } | { type: 'inspect' } | { type: 'report'; windows: Window[] } | { type: 'close' }
export type FromChild =
  | { type: 'loaded' }
  | { type: 'listening'; port: number; lease: string }
  | { type: 'inspect'; inspect: MeshSnapshot }
  | { type: 'report'; report: ServiceReport }
  | { type: 'closed'; close: CloseReport }
  | { type: 'failed'; error: string }

/** The q-quantile (0..1) of ascending samples, nearest-rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

const inWindow = (at: number, w: Window | undefined) => w === undefined || (at >= w.from && at < w.to)

/** Records each call of one edge: when it started, its duration and outcome. */
export class EdgeRecorder {
  readonly #calls: { at: number; ms: number; outcome: string; ok: boolean }[] = []

  /** Times `call`; its result's outcome comes from `outcomeOf`, a thrown error's from its code. */
  async time<T>(call: () => Promise<T>, outcomeOf: (value: T) => { outcome: string; ok: boolean }): Promise<T> {
    const at = Date.now()
    const t0 = performance.now()
    try {
      const value = await call()
      const { outcome, ok } = outcomeOf(value)
      this.#calls.push({ at, ms: performance.now() - t0, outcome, ok })
      return value
    } catch (err) {
      this.#calls.push({ at, ms: performance.now() - t0, outcome: errorCode(err), ok: false })
      throw err
    }
  }

  /** Every call, or the calls that started in `window`. */
  stats(window?: Window): EdgeStats {
    const calls = this.#calls.filter((c) => inWindow(c.at, window))
    const sorted = calls.map((c) => c.ms).sort((a, b) => a - b)
    const outcomes: Record<string, number> = {}
    for (const c of calls) outcomes[c.outcome] = (outcomes[c.outcome] ?? 0) + 1
    return {
      calls: calls.length,
      errors: calls.filter((c) => !c.ok).length,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? 0,
      outcomes,
    }
  }
}

type Served = 'ok' | 'unavailable' | 'internal'

/** Counts what a payments instance served, with the arrival time of each attempt. */
export class ServedRecorder {
  readonly #requests: { at: number; retry: boolean; result: Served | 'pending' }[] = []

  /** Records an attempt as it arrives (`retry`: sent as a retry); call the returned function with its result. */
  arrived(retry: boolean): (result: Served) => void {
    const r: { at: number; retry: boolean; result: Served | 'pending' } = { at: Date.now(), retry, result: 'pending' }
    this.#requests.push(r)
    return (result) => void (r.result = result)
  }

  stats(window?: Window): ServedStats {
    const out: ServedStats = { requests: 0, retries: 0, ok: 0, injectedUnavailable: 0, injectedInternal: 0 }
    for (const r of this.#requests) {
      if (!inWindow(r.at, window)) continue
      out.requests++
      if (r.retry) out.retries++
      if (r.result === 'ok') out.ok++
      else if (r.result === 'unavailable') out.injectedUnavailable++
      else if (r.result === 'internal') out.injectedInternal++
    }
    return out
  }
}

export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined
  const code = e?.code ?? e?.cause?.code
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'Error'
}
