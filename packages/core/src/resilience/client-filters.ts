/**
 * The client stack's filters, outermost first: telemetry → deadline → retry (budget) → breaker →
 * balance. Each is a plain function over (req, ctx, next); the first attempt runs straight through
 * and only a retryable failure enters the p-retry loop, so a success costs no retry machinery.
 */
import CircuitBreaker from 'opossum'
import pRetry, { AbortError } from 'p-retry'
import type { Balancer } from '../balance/balancer.js'
import type { EndpointState } from '../balance/endpoint-state.js'
import type { BreakerPolicy, RetryPolicy } from '../config/mesh-options.js'
import { deadlineExceeded } from '../deadline/call-scope.js'
import { ErrorCodes, isMeshletError, MeshletError } from '../errors.js'
import type { ClientProtocol } from '../stack/client-protocol.js'
import type { ResponseClassifier } from '../stack/response-classifier.js'
import { Classification } from '../stack/response-classifier.js'
import type { CallContext, Filter, Service } from '../stack/service.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import type { RetryBudget } from './retry-budget.js'

export function telemetryFilter<Req, Res>(protocol: ClientProtocol<Req, Res>, metrics: MeshMetrics): Filter<Req, Res> {
  const record = (req: Req, ctx: CallContext, status: number, errorType: string | undefined): void => {
    const method = protocol.method(req)
    const attrs = metrics.attributes(`c:${ctx.service}:${method}:${status}:${errorType ?? ''}`, () => ({
      'http.request.method': method,
      'server.address': ctx.service,
      ...(status ? { 'http.response.status_code': status } : {}),
      ...(errorType ? { 'error.type': errorType } : {}),
    }))
    metrics.clientDuration.record((performance.now() - ctx.start) / 1000, attrs)
  }
  return (req, ctx, next) =>
    next(req, ctx).then(
      (res) => {
        const status = protocol.status(res)
        record(req, ctx, status, status >= 500 ? String(status) : undefined)
        return res
      },
      (err: unknown) => {
        record(req, ctx, 0, isMeshletError(err) ? err.code : ((err as { code?: string })?.code ?? 'Error'))
        throw err
      },
    )
}

/** Fails a call with no time left before anything is written to the network. */
export function deadlineFilter<Req, Res>(): Filter<Req, Res> {
  return (req, ctx, next) => (ctx.deadline <= Date.now() ? Promise.reject(deadlineExceeded(ctx.service, ctx.deadline, ctx.attempt, false)) : next(req, ctx))
}

/** A response the retry loop gave up on after deciding it was retryable; carried as an error inside p-retry. */
class RetryableResponse<Res> extends Error {
  constructor(readonly res: Res) {
    super('retryable response')
  }
}

export function retryFilter<Req, Res>(protocol: ClientProtocol<Req, Res>, policy: RetryPolicy, budget: RetryBudget, metrics: MeshMetrics): Filter<Req, Res> {
  const classifier = protocol.classifier
  const attrs = (service: string, outcome: string) =>
    metrics.attributes(`r:${service}:${outcome}`, () => ({ 'meshlet.destination': service, 'meshlet.retry.outcome': outcome }))

  /** Whether one more attempt may go; spends a budget token when it may. */
  const mayRetry = (req: Req, ctx: CallContext, res: Res | undefined, err: unknown): string | undefined => {
    if (ctx.attempt > (ctx.retryAttempts ?? policy.attempts)) return 'attempts'
    if (ctx.signal?.aborted) return 'cancelled'
    if (ctx.deadline - Date.now() <= policy.backoffBase) return 'deadline'
    // A Retry-After that outlasts the deadline stops here, before the held response is discarded.
    if (res !== undefined) {
      const wait = protocol.retryAfter(res)
      if (wait !== undefined && wait > 0 && Date.now() + wait >= ctx.deadline) return 'deadline'
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
      throw explainFailure(ctx, lastErr, reason, budget)
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
          maxRetryTime: Math.max(0, ctx.deadline - Date.now()),
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
      throw explainFailure(ctx, lastErr ?? err, 'attempts', budget)
    }
  }

  return (req, ctx, next) => {
    budget.deposit()
    return next(req, ctx).then(
      (res) => (classifier.response(req, ctx, res) === Classification.RetryableFailure ? retryLoop(req, ctx, next, res, undefined) : res),
      (err: unknown) => {
        const cls = classifier.error(req, ctx, err)
        if (cls === Classification.Ignorable) throw err
        if (cls !== Classification.RetryableFailure) throw explainFailure(ctx, err, 'not_retryable', budget)
        return retryLoop(req, ctx, next, undefined, err)
      },
    )
  }
}

/**
 * Turns a transport error into a MeshletError that says which endpoint, which attempt, the budget
 * and the deadline left; errors that already are MeshletErrors pass through.
 */
function explainFailure(ctx: CallContext, err: unknown, stoppedBy: string, budget: RetryBudget): unknown {
  if (isMeshletError(err)) return err
  const cause = err as { code?: string; message?: string }
  const left = Number.isFinite(ctx.deadline) ? `${Math.max(0, ctx.deadline - Date.now())}ms` : 'none set'
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

/** A failed response carried through opossum as a rejection so that it counts against the breaker. */
class FailedResponse<Res> extends Error {
  constructor(readonly res: Res) {
    super('failed response')
  }
}

type AnyClassifier = ResponseClassifier<unknown, unknown>
type AnyService = Service<unknown, unknown>

/**
 * One attempt through the breaker: a failed response is rejected so that it counts against it; a
 * refusal before processing is not (opossum, which cannot ignore a fired call, counts it a success).
 */
function breakerAction(req: unknown, ctx: CallContext, next: AnyService, classifier: AnyClassifier): Promise<unknown> {
  return next(req, ctx).then((res) => {
    const cls = classifier.response(req, ctx, res)
    if ((cls === Classification.Failure || cls === Classification.RetryableFailure) && classifier.refused?.(req, ctx, res) !== true) throw new FailedResponse(res)
    return res
  })
}

/** The breaker of one destination, shared by every transport's stack (the classifier travels with each call). */
export function newBreaker(service: string, policy: BreakerPolicy, metrics: MeshMetrics): CircuitBreaker {
  const breaker = new CircuitBreaker(breakerAction, {
    timeout: false,
    errorThresholdPercentage: policy.errorThreshold,
    volumeThreshold: policy.volumeThreshold,
    rollingCountTimeout: policy.window,
    rollingCountBuckets: 10,
    resetTimeout: policy.resetTimeout,
    // Only fires and failures are read. With percentiles on, opossum keeps every call's latency for
    // the window and sorts them all for a snapshot each bucket: ~2 µs per call at 4,000 calls/s.
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    // Errors that say nothing about the destination's health do not count against it.
    errorFilter: ((err: unknown, req: unknown, ctx: CallContext, _next: AnyService, classifier: AnyClassifier) =>
      !(err instanceof FailedResponse) && classifier.error(req, ctx, err) === Classification.Ignorable) as (err: unknown) => boolean,
  })
  // opossum resolves fire() with the fallback's result: a failed response is handed back as a response.
  breaker.fallback((_req: unknown, ctx: CallContext, _next: unknown, _classifier: unknown, err: unknown) => {
    if (err instanceof FailedResponse) return err.res
    if ((err as { code?: string })?.code === 'EOPENBREAKER') {
      throw new MeshletError(ErrorCodes.BREAKER_OPEN, `Circuit breaker for "${service}" is open after too many failures; calls fail fast for up to ${policy.resetTimeout}ms, then one probe is let through. Attempt ${ctx.attempt}.`, {
        retryable: false,
        details: { service, state: breaker.halfOpen ? 'half-open' : 'open', stats: { fires: breaker.stats.fires, failures: breaker.stats.failures } },
      })
    }
    throw err
  })
  const transition = (state: string) => () => {
    metrics.breakerTransitions.add(1, metrics.attributes(`b:${service}:${state}`, () => ({ 'meshlet.destination': service, 'meshlet.breaker.state': state })))
    publish(channels.breakerState, () => ({ service, state }))
  }
  breaker.on('open', transition('open'))
  breaker.on('halfOpen', transition('half-open'))
  breaker.on('close', transition('closed'))
  return breaker
}

export function breakerFilter<Req, Res>(breaker: CircuitBreaker, protocol: ClientProtocol<Req, Res>): Filter<Req, Res> {
  const classifier = protocol.classifier
  return (req, ctx, next) => breaker.fire(req, ctx, next, classifier) as Promise<Res>
}

/** Picks the endpoint, tracks in-flight, and feeds latency and outcome back to the balancer. */
export function balanceFilter<Req, Res>(balancer: Balancer, protocol: ClientProtocol<Req, Res>): Filter<Req, Res> {
  const classifier = protocol.classifier
  const attempt = (req: Req, ctx: CallContext, next: Service<Req, Res>, e: EndpointState): Promise<Res> => {
    ctx.endpoint = e
    e.inflight++
    const t0 = performance.now()
    return next(req, ctx).then(
      (res) => {
        e.inflight--
        balancer.record(e, classifier.response(req, ctx, res), performance.now() - t0)
        const load = protocol.reportedLoad(res)
        if (load !== undefined) balancer.reportLoad(e, load)
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
    let e
    try {
      e = balancer.pick(ctx)
    } catch (err) {
      // Cold start (Knative's activator, in process): with no endpoint at all, wait within the
      // deadline, in a bounded queue, for the first one to appear instead of failing at once.
      if (!balancer.empty) return Promise.reject(err)
      return balancer.waitForEndpoint(ctx.deadline, ctx.signal, err as Error).then(() => attempt(req, ctx, next, balancer.pick(ctx)))
    }
    return attempt(req, ctx, next, e)
  }
}
