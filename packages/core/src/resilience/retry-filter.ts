/**
 * Role `retry`: one retry policy and one retry budget per destination, for every transport. The
 * first attempt runs straight through; only a retryable failure enters the p-retry loop, so a
 * success costs no retry machinery.
 *
 * Reads: `ctx.attempt`, `ctx.retryAttempts` (a route's) or the policy's attempts, `ctx.callerRetrying`, `ctx.deadline`,
 * `ctx.signal`; the classifier's verdict; `protocol.retryAfter` and `protocol.canResend`.
 * Changes: `ctx.attempt` (one per retry). Guarantees: every call deposits in the budget (but one
 * made for a caller's retry, which is not retried either) and every retry withdraws from it; the first retry goes at once (to another endpoint), later ones wait the
 * backoff, a longer Retry-After always, on the stack's clock and random source; never sends a retry at or past the deadline, after a cancellation, or a body that
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

/** A failed attempt the loop may retry, carried as an error inside p-retry (a response, or the transport's error). */
class RetryableAttempt extends Error {
  constructor(readonly failure: unknown) {
    super('retryable attempt')
  }
}

/**
 * Backoff before retry `n` (1 for the first). The first goes at once: it goes to another endpoint
 * (Finagle requeues the same way), and the budget already bounds how many there are; a failover
 * then costs no wait. Later ones wait exponentially from the base, capped, with jitter of up to
 * the same again (as p-retry's `randomize`), drawn from the stack's random source.
 */
export function backoffDelay(policy: Pick<RetryPolicy, 'backoffBase' | 'backoffMax'>, n: number, random: () => number): number {
  if (n <= 1) return 0
  return Math.min(policy.backoffMax, Math.round((1 + random()) * policy.backoffBase * 2 ** (n - 2)))
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export function retryFilter<Req, Res>(protocol: ClientProtocol<Req, Res>, policy: RetryPolicy, budget: RetryBudget, metrics: MeshMetrics, env: StackEnv): Filter<Req, Res> {
  const classifier = protocol.classifier
  const count = (service: string, outcome: string): void =>
    metrics.retries.add(1, metrics.attributes(`r:${service}:${outcome}`, () => ({ 'meshlet.destination': service, 'meshlet.retry.outcome': outcome })))

  /**
   * Whether one more attempt may go, and after how long; spends a budget token when it may. The
   * wait is the backoff, or the server's Retry-After when that is longer; it must end before the
   * deadline.
   */
  const mayRetry = (req: Req, ctx: CallContext, res: Res | undefined, err: unknown): { stop: string } | { wait: number } => {
    if (ctx.attempt > (ctx.retryAttempts ?? policy.attempts)) return { stop: 'attempts' }
    if (ctx.callerRetrying) return { stop: 'caller_retrying' }
    if (ctx.signal?.aborted) return { stop: 'cancelled' }
    const now = env.now()
    if (ctx.deadline - now <= policy.backoffBase) return { stop: 'deadline' }
    let ms = backoffDelay(policy, ctx.attempt, env.random)
    const after = res === undefined ? undefined : protocol.retryAfter(res)
    if (after !== undefined && after > ms) ms = after
    if (now + ms >= ctx.deadline) return { stop: 'deadline' }
    if (!protocol.canResend(req, res, err)) return { stop: 'body_not_replayable' }
    if (!budget.tryWithdraw()) return { stop: 'budget_exhausted' }
    return { wait: ms }
  }

  const retryLoop = async (req: Req, ctx: CallContext, next: Service<Req, Res>, firstRes: Res | undefined, firstErr: unknown): Promise<Res> => {
    let lastRes = firstRes
    let lastErr = firstErr
    let stoppedBy: string | undefined
    /** Decides on the last failure: false to stop (counted, with why); else discards it and waits. */
    const again = async (): Promise<boolean> => {
      const d = mayRetry(req, ctx, lastRes, lastErr)
      if ('stop' in d) {
        stoppedBy = d.stop
        count(ctx.service, d.stop)
        return false
      }
      // Once discarded, a response can no longer be handed to the caller: forget it before waiting.
      const held = lastRes
      lastRes = undefined
      if (held !== undefined) protocol.discard(held)
      try {
        await wait(d.wait, ctx.signal)
      } catch (reason) {
        stoppedBy = 'cancelled'
        count(ctx.service, 'cancelled')
        throw reason
      }
      return true
    }
    const give = (err: unknown): Res => {
      if (lastRes !== undefined) return lastRes
      if (stoppedBy === undefined && ctx.signal?.aborted) stoppedBy = 'cancelled'
      throw explainFailure(ctx, lastErr ?? err, stoppedBy ?? 'attempts', budget, env)
    }
    try {
      if (!(await again())) return give(lastErr)
      return await pRetry(
        async () => {
          ctx.attempt++
          count(ctx.service, 'sent')
          publish(channels.retry, () => ({ service: ctx.service, attempt: ctx.attempt, previousEndpoint: ctx.endpoint?.url }))
          lastRes = undefined
          lastErr = undefined
          let res: Res
          try {
            res = await next(req, ctx)
          } catch (err) {
            lastErr = err
            if (classifier.error(req, ctx, err) !== Classification.RetryableFailure) {
              stoppedBy = 'not_retryable'
              throw new AbortError(err as Error)
            }
            throw new RetryableAttempt(err)
          }
          if (classifier.response(req, ctx, res) !== Classification.RetryableFailure) return res
          lastRes = res
          throw new RetryableAttempt(res)
        },
        // The loop's own timing is off (no delay, no time limit): `again` decides, counts and waits,
        // on the stack's clock and random source, so that no retry goes out at the deadline.
        { retries: Infinity, minTimeout: 0, factor: 1, randomize: false, signal: ctx.signal, shouldRetry: again },
      )
    } catch (err) {
      return give(err instanceof RetryableAttempt ? err.failure : err)
    }
  }

  return (req, ctx, next) => {
    // A call made for a caller's retry is the same user request again: it funds no retries.
    if (!ctx.callerRetrying) budget.deposit()
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
          : stoppedBy === 'cancelled'
            ? ` Not retried: the caller cancelled the call (after ${ctx.attempt} attempt(s)).`
            : stoppedBy === 'caller_retrying'
              ? ' Not retried here: the request this call serves is itself a retry, and its caller retries (retries happen at one hop).'
              : ` Gave up after ${ctx.attempt} attempt(s) (${stoppedBy}).`
  const code = stoppedBy === 'budget_exhausted' ? ErrorCodes.BUDGET_EXHAUSTED : stoppedBy === 'cancelled' ? ErrorCodes.CANCELLED : ErrorCodes.UPSTREAM
  // Every endpoint the call tried, not only the last: the person on call needs to know whether one
  // instance or the whole destination failed.
  const earlier = (ctx.tried ?? []).filter((e) => e !== ctx.endpoint).map((e) => e.url)
  const also = earlier.length === 0 ? '' : ` Earlier attempts failed at ${earlier.join(', ')}.`
  return new MeshletError(code, `Call to "${ctx.service}" failed at ${ctx.endpoint?.url ?? '(no endpoint)'} on attempt ${ctx.attempt}: ${cause?.code ? `${cause.code} ` : ''}${cause?.message ?? String(err)}.${why}${also} Deadline left: ${left}; retry budget left: ${Math.floor(budget.balance())}.`, {
    cause: err,
    retryable: false,
    details: { service: ctx.service, endpoint: ctx.endpoint?.url, tried: [...earlier, ...(ctx.endpoint !== undefined ? [ctx.endpoint.url] : [])], attempt: ctx.attempt, stoppedBy },
  })
}
