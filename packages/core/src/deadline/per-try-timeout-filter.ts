/**
 * Role `per-try-timeout`, inside the pick: gives each attempt its own bound for the response
 * headers, so that one slow endpoint costs a retry, not the whole deadline. The transport enforces
 * it (one timer per attempt for `min(ctx.deadline, ctx.attemptDeadline)`) and fails the attempt
 * with `attemptExpired(ctx)`.
 *
 * Reads: `ctx.perTryTimeout` (the policy's, or a route rule's). Changes: `ctx.attemptDeadline`, per
 * attempt. Guarantees: nothing else; it never cuts a response that is flowing.
 */
import type { CallContext, Filter, StackEnv } from '../client/call-context.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import { deadlineExceeded } from './call-scope.js'

export function perTryTimeoutFilter<Req, Res>(env: StackEnv): Filter<Req, Res> {
  return (req, ctx, next) => {
    ctx.attemptDeadline = ctx.perTryTimeout === Infinity ? Infinity : env.now() + ctx.perTryTimeout
    return next(req, ctx)
  }
}

/** The error an attempt fails with when its time (the per-try timeout or the call's deadline) ran out before response headers. */
export function attemptExpired(ctx: CallContext): MeshletError {
  if (ctx.attemptDeadline >= ctx.deadline) return deadlineExceeded(ctx.service, ctx.deadline, ctx.attempt, true)
  const at = ctx.endpoint?.url ?? '(no endpoint)'
  const next = ctx.idempotent ? 'it is retried on another endpoint while attempts, budget and deadline allow' : 'not retried (the call is not idempotent: the server may be processing it)'
  return new MeshletError(ErrorCodes.DEADLINE, `Attempt ${ctx.attempt} to "${ctx.service}" got no response headers from ${at} within the perTryTimeout of ${ctx.perTryTimeout}ms; ${next}.`, {
    retryable: true,
    details: { service: ctx.service, endpoint: ctx.endpoint?.url, deadline: ctx.deadline, attempt: ctx.attempt, sent: true, perTry: true, perTryTimeout: ctx.perTryTimeout },
  })
}
