/**
 * Role `deadline`: a call with no time left fails before anything is written to the network; one
 * with time left carries its deadline to the server the transport's way (`meshlet-deadline` on HTTP;
 * gRPC sends `grpc-timeout` per attempt from the same `ctx.deadline`).
 *
 * Reads: `ctx.deadline` (already shortened by a route's timeout: the route role sits outside).
 * Changes: the request's deadline header, once. Guarantees: next is never called past the deadline.
 */
import type { ClientProtocol } from '../client/client-protocol.js'
import type { Filter, StackEnv } from '../client/call-context.js'
import { deadlineExceeded } from './call-scope.js'

export function deadlineFilter<Req, Res>(protocol: Pick<ClientProtocol<Req, Res>, 'writeDeadline'>, env: StackEnv): Filter<Req, Res> {
  const write = protocol.writeDeadline
  return (req, ctx, next) => {
    if (ctx.deadline <= env.now()) return Promise.reject(deadlineExceeded(ctx.service, ctx.deadline, ctx.attempt, false))
    if (write !== undefined && ctx.deadline !== Infinity) write(req, ctx.deadline)
    return next(req, ctx)
  }
}
