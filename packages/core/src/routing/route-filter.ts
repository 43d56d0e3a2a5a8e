/**
 * Role `route`: the first matching rule of the destination's route table decides the call's
 * revision (weighted split, sticky by header), may shorten its deadline, sets the rule's retries
 * and per-try timeout, picks a shadow endpoint to mirror to, and injects faults.
 *
 * Reads: the request's method, path, query and headers (`protocol.requestInfo`). Changes:
 * `ctx.revision`, `ctx.deadline` (only ever earlier), `ctx.retryAttempts`, `ctx.perTryTimeout`,
 * `ctx.mirror` (sent by the mirror role, further in). Guarantees: a fault abort answers with
 * `protocol.abortResponse` and never reaches an endpoint; a delay waits before calling next; every
 * injected fault is counted in `meshlet.faults.injected` (and an abort published on `meshlet:fault`);
 * a mirror goes only to a ready endpoint of the shadow revision (mirrors never fall back) and is
 * counted in `meshlet.requests.mirrored`.
 */
import type { EndpointState } from '../balance/endpoint-state.js'
import type { ClientProtocol } from '../client/client-protocol.js'
import type { Filter, StackEnv } from '../client/call-context.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import type { RouteTable } from './route-table.js'

/** Marks a mirrored copy, so the shadow can tell it from real traffic (and not bill anyone twice). */
export const MIRROR_HEADER = 'meshlet-mirror'

export type RouteProtocol<Req, Res> = Required<Pick<ClientProtocol<Req, Res>, 'requestInfo' | 'abortResponse'>> & Pick<ClientProtocol<Req, Res>, 'mirror'>

export function routeFilter<Req, Res>(table: RouteTable, protocol: RouteProtocol<Req, Res>, metrics: MeshMetrics, shadowOf: (revision: string) => EndpointState | undefined, env: StackEnv): Filter<Req, Res> {
  const canMirror = protocol.mirror !== undefined
  return (req, ctx, next) => {
    const info = protocol.requestInfo(req)
    const rule = table.route(info)
    if (rule === undefined) return next(req, ctx)
    ctx.revision = rule.revision(info)
    if (rule.timeout !== undefined) ctx.deadline = Math.min(ctx.deadline, env.now() + rule.timeout)
    const m = rule.mirror
    if (m !== undefined && canMirror && env.random() * 100 < m.percent) {
      const shadow = shadowOf(m.revision)
      if (shadow !== undefined) {
        ctx.mirror = shadow
        metrics.mirrored.add(1, metrics.attributes(`m:${ctx.service}:${m.revision}`, () => ({ 'meshlet.destination': ctx.service, 'meshlet.revision': m.revision })))
      }
    }
    if (rule.retries !== undefined) {
      if (rule.retries.attempts !== undefined) ctx.retryAttempts = rule.retries.attempts
      if (rule.retries.perTryTimeout !== undefined) ctx.perTryTimeout = rule.retries.perTryTimeout
    }
    const fault = rule.fault
    if (fault !== undefined && (fault.header === undefined || info.header(fault.header) !== undefined)) {
      if (fault.abort !== undefined && env.random() * 100 < fault.abort.percent) {
        const status = fault.abort.status
        injected(metrics, ctx.service, 'abort')
        publish(channels.faultInjected, () => ({ service: ctx.service, kind: 'abort', status }))
        return Promise.resolve(protocol.abortResponse(req, status))
      }
      if (fault.delay !== undefined && env.random() * 100 < fault.delay.percent) {
        injected(metrics, ctx.service, 'delay')
        const ms = fault.delay.fixed
        return new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => next(req, ctx))
      }
    }
    return next(req, ctx)
  }
}

function injected(metrics: MeshMetrics, service: string, kind: string): void {
  metrics.faultsInjected.add(1, metrics.attributes(`f:${service}:${kind}`, () => ({ 'meshlet.destination': service, 'meshlet.fault': kind })))
}
