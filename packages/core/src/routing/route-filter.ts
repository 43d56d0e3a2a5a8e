import type { EndpointState } from '../balance/endpoint-state.js'
import type { ClientProtocol } from '../stack/client-protocol.js'
import type { Filter } from '../stack/service.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import type { RouteTable } from './route-table.js'

/**
 * Applies the destination's route table to a call: the matching rule picks the revision, may
 * shorten the deadline, and may inject a delay or an abort (counted in `meshlet.faults.injected`).
 */
export function routeFilter<Req, Res>(
  table: RouteTable,
  protocol: Required<Pick<ClientProtocol<Req, Res>, 'requestInfo' | 'abortResponse'>> & Pick<ClientProtocol<Req, Res>, 'mirror'>,
  metrics: MeshMetrics,
  shadowOf: (revision: string) => EndpointState | undefined,
): Filter<Req, Res> {
  const injected = (service: string, kind: string) => metrics.faultsInjected.add(1, metrics.attributes(`f:${service}:${kind}`, () => ({ 'meshlet.destination': service, 'meshlet.fault': kind })))
  return (req, ctx, next) => {
    const info = protocol.requestInfo(req)
    const rule = table.route(info)
    if (rule === undefined) return next(req, ctx)
    ctx.revision = rule.revision(info)
    if (rule.timeout !== undefined) ctx.deadline = Math.min(ctx.deadline, Date.now() + rule.timeout)
    const mirror = rule.mirror
    if (mirror !== undefined && protocol.mirror !== undefined && Math.random() * 100 < mirror.percent) {
      const shadow = shadowOf(mirror.revision)
      if (shadow !== undefined) {
        metrics.mirrored.add(1, metrics.attributes(`m:${ctx.service}:${mirror.revision}`, () => ({ 'meshlet.destination': ctx.service, 'meshlet.revision': mirror.revision })))
        protocol.mirror(req, shadow)
      }
    }
    if (rule.retries !== undefined) {
      if (rule.retries.attempts !== undefined) ctx.retryAttempts = rule.retries.attempts
      if (rule.retries.perTryTimeout !== undefined) ctx.perTryTimeout = rule.retries.perTryTimeout
    }
    const fault = rule.fault
    if (fault === undefined || (fault.header !== undefined && info.header(fault.header) === undefined)) return next(req, ctx)
    if (fault.abort !== undefined && Math.random() * 100 < fault.abort.percent) {
      injected(ctx.service, 'abort')
      publish(channels.faultInjected, () => ({ service: ctx.service, kind: 'abort', status: fault.abort!.status }))
      return Promise.resolve(protocol.abortResponse(req, fault.abort.status))
    }
    if (fault.delay !== undefined && Math.random() * 100 < fault.delay.percent) {
      injected(ctx.service, 'delay')
      const ms = fault.delay.fixed
      return new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => next(req, ctx))
    }
    return next(req, ctx)
  }
}
