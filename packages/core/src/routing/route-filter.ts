import type { EndpointState } from '../balance/endpoint-state.js'
import type { ClientProtocol } from '../stack/client-protocol.js'
import type { CallContext, Filter } from '../stack/service.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import type { RequestInfo, RouteTable } from './route-table.js'

/** Marks a mirrored copy, so the shadow can tell it from real traffic (and not bill anyone twice). */
export const MIRROR_HEADER = 'meshlet-mirror'

/** What the matching rule asks of one call (its revision and deadline are already set on the context). */
export interface RouteDecision {
  /** Answer with this HTTP status instead of calling (an injected abort). */
  readonly abort: number | undefined
  /** Wait this long (ms) before calling (an injected delay). */
  readonly delay: number
  /** Copy the call to this endpoint of the shadow revision, fire-and-forget. */
  readonly mirror: EndpointState | undefined
}

const NOTHING: RouteDecision = { abort: undefined, delay: 0, mirror: undefined }

/**
 * Routes one call, for every transport: the matching rule sets `ctx.revision`, may shorten
 * `ctx.deadline`, sets the rule's retries, and decides an injected abort or delay (counted in
 * `meshlet.faults.injected` and on `meshlet:fault`) and a mirrored copy (counted in
 * `meshlet.requests.mirrored`; only when `canMirror`, and only to a ready endpoint of the shadow
 * revision: mirrors never fall back). Undefined when no rule matches.
 */
export function routeCall(
  table: RouteTable,
  info: RequestInfo,
  ctx: CallContext,
  metrics: MeshMetrics,
  shadowOf: (revision: string) => EndpointState | undefined,
  canMirror: boolean,
): RouteDecision | undefined {
  const rule = table.route(info)
  if (rule === undefined) return undefined
  ctx.revision = rule.revision(info)
  if (rule.timeout !== undefined) ctx.deadline = Math.min(ctx.deadline, Date.now() + rule.timeout)
  let mirror: EndpointState | undefined
  const m = rule.mirror
  if (m !== undefined && canMirror && Math.random() * 100 < m.percent) {
    mirror = shadowOf(m.revision)
    if (mirror !== undefined) metrics.mirrored.add(1, metrics.attributes(`m:${ctx.service}:${m.revision}`, () => ({ 'meshlet.destination': ctx.service, 'meshlet.revision': m.revision })))
  }
  if (rule.retries !== undefined) {
    if (rule.retries.attempts !== undefined) ctx.retryAttempts = rule.retries.attempts
    if (rule.retries.perTryTimeout !== undefined) ctx.perTryTimeout = rule.retries.perTryTimeout
  }
  const fault = rule.fault
  if (fault !== undefined && (fault.header === undefined || info.header(fault.header) !== undefined)) {
    if (fault.abort !== undefined && Math.random() * 100 < fault.abort.percent) {
      injected(metrics, ctx.service, 'abort')
      publish(channels.faultInjected, () => ({ service: ctx.service, kind: 'abort', status: fault.abort!.status }))
      return { abort: fault.abort.status, delay: 0, mirror }
    }
    if (fault.delay !== undefined && Math.random() * 100 < fault.delay.percent) {
      injected(metrics, ctx.service, 'delay')
      return { abort: undefined, delay: fault.delay.fixed, mirror }
    }
  }
  return mirror === undefined ? NOTHING : { abort: undefined, delay: 0, mirror }
}

function injected(metrics: MeshMetrics, service: string, kind: string): void {
  metrics.faultsInjected.add(1, metrics.attributes(`f:${service}:${kind}`, () => ({ 'meshlet.destination': service, 'meshlet.fault': kind })))
}

/** The route step of the client stack: routeCall, then the mirror, abort or delay it decided. */
export function routeFilter<Req, Res>(
  table: RouteTable,
  protocol: Required<Pick<ClientProtocol<Req, Res>, 'requestInfo' | 'abortResponse'>> & Pick<ClientProtocol<Req, Res>, 'mirror'>,
  metrics: MeshMetrics,
  shadowOf: (revision: string) => EndpointState | undefined,
): Filter<Req, Res> {
  const mirror = protocol.mirror
  return (req, ctx, next) => {
    const d = routeCall(table, protocol.requestInfo(req), ctx, metrics, shadowOf, mirror !== undefined)
    if (d === undefined) return next(req, ctx)
    if (d.mirror !== undefined) mirror!(req, d.mirror)
    if (d.abort !== undefined) return Promise.resolve(protocol.abortResponse(req, d.abort))
    if (d.delay > 0) {
      const ms = d.delay
      return new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => next(req, ctx))
    }
    return next(req, ctx)
  }
}
