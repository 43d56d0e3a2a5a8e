/**
 * The retry loop of one delivery, driven by p-retry with no timing of its own: the policy decides
 * what is retried (Knative's SelectiveRetry) and how long each wait is (the backoff, or a longer
 * Retry-After on a 429/503, capped by retryAfterMax). Resolves with the outcome — a 2xx, or the last
 * failure once retries are spent or the answer is final — and rejects only when `signal` aborts
 * (the trigger stopped: the delivery stays unacked and is handed out again).
 *
 * The first attempt runs directly and the p-retry loop starts only once it has failed retryably:
 * nearly every delivery succeeds at once, and p-retry's set-up is a large part of an attempt's cost.
 */
import pRetry, { AbortError } from 'p-retry'
import { backoffDelay, isRetryableStatus, retryAfterDelay, type DeliveryPolicy } from './delivery-policy.js'
import { AttemptFailure, type SubscriberResponse } from './subscriber-request.js'

export type DeliveryOutcome =
  | { readonly ok: true; readonly response: SubscriberResponse; readonly attempts: number }
  | {
      readonly ok: false
      /** The last answer's status; 500 when there was none, as Knative reports a dispatch error. */
      readonly status: number
      /** The last answer's body (or the dispatch error's text), for knativeerrordata. */
      readonly body: Buffer
      /** For the log: what went wrong, in words. */
      readonly reason: string
      readonly attempts: number
    }

export interface RetryObserver {
  /** Before the wait for retry `n` (1 for the first). */
  onRetry?(n: number, delayMs: number, reason: string): void
}

/** A non-2xx answer carried through p-retry as an error. */
class FailedAnswer extends Error {
  constructor(readonly response: SubscriberResponse) {
    super(`answered ${response.status}`)
  }
}

export async function deliverWithRetries(send: () => Promise<SubscriberResponse>, policy: DeliveryPolicy, signal: AbortSignal, observer: RetryObserver = {}): Promise<DeliveryOutcome> {
  let first: unknown
  try {
    const res = await send()
    if (res.status >= 200 && res.status < 300) return { ok: true, response: res, attempts: 1 }
    first = new FailedAnswer(res)
  } catch (err) {
    first = err
  }
  if (signal.aborted) throw signal.reason ?? first
  // 3xx and most 4xx are final: sending the same event again gets the same answer.
  const retryable = first instanceof FailedAnswer ? isRetryableStatus(first.response.status) : first instanceof AttemptFailure
  if (!retryable || policy.retry <= 0) return failedOutcome(first, 1)

  let attempts = 1
  const beforeRetry = async (error: unknown, attemptNumber: number): Promise<void> => {
    const backoff = backoffDelay(policy, attemptNumber)
    const retryAfter = error instanceof FailedAnswer ? retryAfterDelay(error.response.status, error.response.headers['retry-after'], policy.retryAfterMaxMs) : 0
    const delay = Math.max(backoff, retryAfter)
    observer.onRetry?.(attemptNumber, delay, describe(error))
    await wait(delay, signal)
  }
  try {
    await beforeRetry(first, 1)
    if (signal.aborted) throw signal.reason
    const response = await pRetry(
      async () => {
        attempts++
        const res = await send()
        if (res.status >= 200 && res.status < 300) return res
        const failed = new FailedAnswer(res)
        if (!isRetryableStatus(res.status)) throw new AbortError(failed)
        throw failed
      },
      {
        // The first attempt and its wait are done: p-retry runs the rest, numbering them from 2.
        retries: policy.retry - 1,
        minTimeout: 0,
        factor: 1,
        randomize: false,
        signal,
        onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
          if (retriesLeft <= 0 || signal.aborted) return
          if (!(error instanceof FailedAnswer) && !(error instanceof AttemptFailure)) return
          await beforeRetry(error, attemptNumber + 1)
        },
        // Anything but an answer or a failed attempt is a bug here, not a subscriber's failure: stop.
        shouldRetry: ({ error }) => error instanceof FailedAnswer || error instanceof AttemptFailure,
      },
    )
    return { ok: true, response, attempts }
  } catch (err) {
    if (signal.aborted) throw signal.reason ?? err
    return failedOutcome(err instanceof AbortError ? err.originalError : err, attempts)
  }
}

function failedOutcome(cause: unknown, attempts: number): DeliveryOutcome {
  if (cause instanceof FailedAnswer) return { ok: false, status: cause.response.status, body: cause.response.body, reason: describe(cause), attempts }
  const reason = describe(cause)
  return { ok: false, status: 500, body: Buffer.from(`dispatch error: ${reason}`), reason, attempts }
}

function describe(error: unknown): string {
  if (error instanceof FailedAnswer) {
    const text = error.response.body.subarray(0, 200).toString('utf8').replace(/\s+/g, ' ').trim()
    return `answered ${error.response.status}${text ? `: ${text}` : ''}`
  }
  return (error as Error)?.message ?? String(error)
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    // On abort the loop ends at once: p-retry sees the signal before its next attempt.
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
