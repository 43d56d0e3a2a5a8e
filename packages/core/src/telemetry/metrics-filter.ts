/**
 * Role `metrics`, the outermost: records the call's duration metric once per call, retries
 * included, as the caller saw it. Outermost so that calls failing before any attempt (open breaker,
 * no endpoint, spent deadline, an injected abort) are counted too.
 *
 * Reads: `ctx.start`. Changes: nothing. Guarantees: exactly one `protocol.recordDuration` per call,
 * at the response (or, for a response still streaming, at its end: `protocol.whenEnded`), or at the
 * error; the result passes through untouched.
 */
import type { ClientProtocol } from '../client/client-protocol.js'
import type { Filter } from '../client/call-context.js'

export function metricsFilter<Req, Res>(protocol: ClientProtocol<Req, Res>): Filter<Req, Res> {
  const whenEnded = protocol.whenEnded
  return (req, ctx, next) =>
    next(req, ctx).then(
      (res) => {
        // A closure only for a transport that streams responses (gRPC); HTTP records at once.
        if (whenEnded === undefined || !whenEnded(res, (final) => protocol.recordDuration(req, ctx, final, undefined, (performance.now() - ctx.start) / 1000))) {
          protocol.recordDuration(req, ctx, res, undefined, (performance.now() - ctx.start) / 1000)
        }
        return res
      },
      (err: unknown) => {
        protocol.recordDuration(req, ctx, undefined, err, (performance.now() - ctx.start) / 1000)
        throw err
      },
    )
}
