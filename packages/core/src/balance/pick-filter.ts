/**
 * Role `pick`: asks the destination's balancer for this attempt's endpoint and feeds the outcome
 * back: in-flight while the attempt runs, its latency and classification, the load the server
 * reported. With no endpoint at all it waits, within the deadline and in a bounded queue, for the
 * first one to appear (Knative's activator, in process).
 *
 * Reads: `ctx.tried`, `ctx.revision`, the ring-hash header, `protocol.usable` (a transport's own
 * connectivity). Changes: `ctx.endpoint` (this attempt's), `ctx.tried` (the previous attempt's
 * endpoint, so a retry goes elsewhere while it can), `ctx.hashKey`. Guarantees: every pick is
 * matched by exactly one `balancer.record` (at the response, or at a stream's end: `whenEnded`);
 * throws MESHLET_ERR_NO_ENDPOINT when nothing can serve.
 */
import type { ClientProtocol } from '../client/client-protocol.js'
import { systemEnv, type CallContext, type Filter, type Service, type StackEnv } from '../client/call-context.js'
import type { Balancer } from './balancer.js'
import type { EndpointState } from './endpoint-state.js'

export function pickFilter<Req, Res>(balancer: Balancer, protocol: ClientProtocol<Req, Res>, env: StackEnv = systemEnv): Filter<Req, Res> {
  const { classifier, usable, whenEnded } = protocol
  /** The attempt's one record: out of flight, its outcome and latency, the load the server reported. */
  const settle = (req: Req, ctx: CallContext, e: EndpointState, res: Res, ms: number): void => {
    e.inflight--
    balancer.record(e, classifier.response(req, ctx, res), ms)
    const load = protocol.reportedLoad(res)
    if (load !== undefined) balancer.reportLoad(e, load)
  }
  const attempt = (req: Req, ctx: CallContext, next: Service<Req, Res>, e: EndpointState): Promise<Res> => {
    ctx.endpoint = e
    e.inflight++
    const t0 = performance.now()
    return next(req, ctx).then(
      (res) => {
        const ms = performance.now() - t0
        // A closure only for a transport that streams responses (gRPC); HTTP records at once.
        if (whenEnded === undefined || !whenEnded(res, (final) => settle(req, ctx, e, final, ms))) settle(req, ctx, e, res, ms)
        return res
      },
      (err: unknown) => {
        e.inflight--
        balancer.record(e, classifier.error(req, ctx, err), performance.now() - t0)
        throw err
      },
    )
  }
  return (req, ctx, next) => {
    // A retry: the endpoint of the attempt before is tried, so that this pick avoids it while another is ready.
    if (ctx.endpoint !== undefined && !ctx.tried?.includes(ctx.endpoint)) (ctx.tried ??= []).push(ctx.endpoint)
    const hashHeader = balancer.hashHeader
    if (hashHeader !== undefined && protocol.requestInfo !== undefined) ctx.hashKey = protocol.requestInfo(req).header(hashHeader)
    const only = usable?.(req)
    let e
    try {
      e = balancer.pick(ctx, only)
    } catch (err) {
      if (!balancer.empty) return Promise.reject(err)
      return balancer.waitForEndpoint(ctx.deadline - env.now(), ctx.signal, err as Error).then(() => attempt(req, ctx, next, balancer.pick(ctx, usable?.(req))))
    }
    return attempt(req, ctx, next, e)
  }
}
