/**
 * Role `retry`: one retry policy and one retry budget per destination, for every transport. The
 * first attempt runs straight through; only a retryable failure enters the p-retry loop, so a
 * success costs no retry machinery.
 *
 * Reads: `ctx.attempt`, `ctx.retryAttempts` (a route's) or the policy's attempts, `ctx.deadline`,
 * `ctx.signal`; the classifier's verdict; `protocol.retryAfter` and `protocol.canResend`.
 * Changes: `ctx.attempt` (one per retry). Guarantees: every call deposits in the budget and every
 * retry withdraws from it; never retries past the deadline, after a cancellation, or a body that
 * cannot be sent again; a response it gives up on is handed back as it is, an error becomes a
 * MeshletError that says which endpoint, which attempt, why it stopped, the budget and the deadline
 * left. Each decision is counted in `meshlet.retries` (outcome `sent` or the reason it stopped).
 */
import pRetry, { AbortError } from 'p-retry'
import type { ClientProtocol } from '../client/client-protocol.js'
import type { CallContext, Filter, Service, StackEnv } from '../client/call-context.js'
import type { RetryPolicy } from '../config/mesh-options.js'
import { ErrorCodes, isMeshletError, MeshletError } from '../errors.js'
import { Classification } from '../stack/response-classifier.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import type { RetryBudget } from './retry-budget.js'

/** A response the retry loop gave up on after deciding it was retryable; carried as an error inside p-retry. */
class RetryableResponse<Res> extends Error {
  constructor(readonly res: Res) {
    super('retryable response')
  }
}

export function retryFilter<Req, Res>(protocol: ClientProtocol<Req, Res>, policy: RetryPolicy, budget: RetryBudget, metrics: MeshMetrics, env: StackEnv): Filter<Req, Res> {
  const classifier = protocol.classifier
  const attrs = (service: string, outcome: string) =>
    metrics.attributes(`r:${service}:${outcome}`, () => ({ 'meshlet.destination': service, 'meshlet.retry.outcome': outcome }))

  /** Whether one more attempt may go; spends a budget token when it may. */
  const mayRetry = (req: Req, ctx: CallContext, res: Res | undefined, err: unknown): string | undefined => {
    if (ctx.attempt > (ctx.retryAttempts ?? policy.attempts)) return 'attempts'
    if (ctx.signal?.aborted) return 'cancelled'
    const now = env.now()
    if (ctx.deadline - now <= policy.backoffBase) return 'deadline'
    // A Retry-After that outlasts the deadline stops here, before the held response is discarded.
    if (res !== undefined) {
      const wait = protocol.retryAfter(res)
      if (wait !== undefined && wait > 0 && now + wait >= ctx.deadline) return 'deadline'
    }
    if (!protocol.canResend(req, res, err)) return 'body_not_replayable'
    if (!budget.tryWithdraw()) return 'budget_exhausted'
    return undefined
  }

  /** Releases a failed response that is being retried and waits out its Retry-After, if any. */
  const release = async (res: Res | undefined): Promise<void> => {
    if (res === undefined) return
    const wait = protocol.retryAfter(res)
    protocol.discard(res)
    if (wait !== undefined && wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }

  const retryLoop = async (req: Req, ctx: CallContext, next: Service<Req, Res>, firstRes: Res | undefined, firstErr: unknown): Promise<Res> => {
    let lastRes = firstRes
    let lastErr = firstErr
    const stopped = (reason: string): Promise<Res> => {
      metrics.retries.add(1, attrs(ctx.service, reason))
      if (lastRes !== undefined) return Promise.resolve(lastRes)
      throw explainFailure(ctx, lastErr, reason, budget, env)
    }
    const first = mayRetry(req, ctx, lastRes, lastErr)
    if (first !== undefined) return stopped(first)
    // Once discarded, a response can no longer be handed to the caller: forget it before waiting.
    const held = lastRes
    lastRes = undefined
    await release(held)

    try {
      return await pRetry(
        async () => {
          ctx.attempt++
          metrics.retries.add(1, attrs(ctx.service, 'sent'))
          publish(channels.retry, () => ({ service: ctx.service, attempt: ctx.attempt, previousEndpoint: ctx.endpoint?.url }))
          lastRes = undefined
          lastErr = undefined
          try {
            const res = await next(req, ctx)
            if (classifier.response(req, ctx, res) !== Classification.RetryableFailure) return res
            lastRes = res
            throw new RetryableResponse(res)
          } catch (err) {
            if (err instanceof RetryableResponse) throw err
            lastErr = err
            if (classifier.error(req, ctx, err) !== Classification.RetryableFailure) throw new AbortError(err as Error)
            throw err
          }
        },
        {
          retries: Math.max(0, (ctx.retryAttempts ?? policy.attempts) - 1),
          factor: 2,
          minTimeout: policy.backoffBase,
          maxTimeout: policy.backoffMax,
          randomize: true,
          maxRetryTime: Math.max(0, ctx.deadline - env.now()),
          signal: ctx.signal,
          shouldRetry: async () => {
            const reason = mayRetry(req, ctx, lastRes, lastErr)
            if (reason !== undefined) {
              metrics.retries.add(1, attrs(ctx.service, reason))
              return false
            }
            const held = lastRes
            lastRes = undefined
            await release(held)
            return true
          },
        },
      )
    } catch (err) {
      if (err instanceof RetryableResponse) return err.res as Res
      if (lastRes !== undefined) return lastRes
      throw explainFailure(ctx, lastErr ?? err, 'attempts', budget, env)
    }
  }

  return (req, ctx, next) => {
    budget.deposit()
    return next(req, ctx).then(
      (res) => (classifier.response(req, ctx, res) === Classification.RetryableFailure ? retryLoop(req, ctx, next, res, undefined) : res),
      (err: unknown) => {
        const cls = classifier.error(req, ctx, err)
        if (cls === Classification.Ignorable) throw err
        if (cls !== Classification.RetryableFailure) throw explainFailure(ctx, err, 'not_retryable', budget, env)
        return retryLoop(req, ctx, next, undefined, err)
      },
    )
  }
}

/**
 * Turns a transport error into a MeshletError that says which endpoint, which attempt, the budget
 * and the deadline left; errors that already are MeshletErrors pass through.
 */
function explainFailure(ctx: CallContext, err: unknown, stoppedBy: string, budget: RetryBudget, env: StackEnv): unknown {
  if (isMeshletError(err)) return err
  const cause = err as { code?: string; message?: string }
  const left = Number.isFinite(ctx.deadline) ? `${Math.max(0, ctx.deadline - env.now())}ms` : 'none set'
  const why =
    stoppedBy === 'budget_exhausted'
      ? ' Not retried: the retry budget is spent (the destination is failing broadly; retrying would add load).'
      : stoppedBy === 'body_not_replayable'
        ? ' Not retried: the request body was a stream that was already sent; pass a Buffer or string body to allow retries.'
        : stoppedBy === 'not_retryable'
          ? ''
          : ` Gave up after ${ctx.attempt} attempt(s) (${stoppedBy}).`
  const code = stoppedBy === 'budget_exhausted' ? ErrorCodes.BUDGET_EXHAUSTED : ErrorCodes.UPSTREAM
  return new MeshletError(code, `Call to "${ctx.service}" failed at ${ctx.endpoint?.url ?? '(no endpoint)'} on attempt ${ctx.attempt}: ${cause?.code ? `${cause.code} ` : ''}${cause?.message ?? String(err)}.${why} Deadline left: ${left}; retry budget left: ${Math.floor(budget.balance())}.`, {
    cause: err,
    retryable: false,
    details: { service: ctx.service, endpoint: ctx.endpoint?.url, attempt: ctx.attempt, stoppedBy },
  })
}
