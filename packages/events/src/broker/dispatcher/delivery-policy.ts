/**
 * A trigger's delivery policy: Knative's DeliverySpec (the trigger's fields over its broker's over
 * meshlet's defaults) resolved into numbers once per trigger version, and the rules the retry loop
 * applies — which answers are retried, how long to wait before each retry, how far a Retry-After
 * may push it (knative/eventing pkg/kncloudevents/retries.go: SelectiveRetry, generateBackoffFn).
 */
import { ErrorCodes, MeshletError } from '@meshlet/core'
import type { DeliverySpec, Destination } from '../../resources/event-specs.js'
import { parseIsoDuration } from '../../resources/delivery-spec.js'

export interface DeliveryPolicy {
  /** Retries after the first attempt. */
  readonly retry: number
  readonly backoffPolicy: 'linear' | 'exponential'
  readonly backoffDelayMs: number
  /** The most one attempt may take, until its whole response is read. */
  readonly timeoutMs: number
  /** The most a Retry-After may delay a retry; 0 ignores Retry-After. */
  readonly retryAfterMaxMs: number
  readonly deadLetterSink: Destination | undefined
}

/**
 * Used where neither the trigger nor its broker says. Knative has no retries by default; a mesh
 * whose subscribers restart during deploys loses fewer events with a few short ones.
 */
export const DEFAULT_DELIVERY = Object.freeze({ retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S', timeout: 'PT30S', retryAfterMax: 'PT60S' } as const)

/** Resolves `trigger` over `broker` over DEFAULT_DELIVERY, field by field. Throws MESHLET_ERR_CONFIG_INVALID for a duration it cannot read. */
export function resolveDeliveryPolicy(trigger: DeliverySpec | undefined, broker: DeliverySpec | undefined): DeliveryPolicy {
  const pick = <K extends keyof DeliverySpec>(k: K): DeliverySpec[K] => trigger?.[k] ?? broker?.[k]
  return {
    retry: Math.max(0, Math.floor(pick('retry') ?? DEFAULT_DELIVERY.retry)),
    backoffPolicy: pick('backoffPolicy') ?? DEFAULT_DELIVERY.backoffPolicy,
    backoffDelayMs: durationMs('backoffDelay', pick('backoffDelay') ?? DEFAULT_DELIVERY.backoffDelay),
    timeoutMs: durationMs('timeout', pick('timeout') ?? DEFAULT_DELIVERY.timeout),
    retryAfterMaxMs: durationMs('retryAfterMax', pick('retryAfterMax') ?? DEFAULT_DELIVERY.retryAfterMax),
    deadLetterSink: pick('deadLetterSink'),
  }
}

function durationMs(field: string, text: string): number {
  const ms = parseIsoDuration(text)
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `delivery.${field} ${JSON.stringify(text)} is not an ISO 8601 duration such as PT0.5S`)
  return ms
}

/**
 * The wait before retry `n` (1 for the first): linear `delay × n`, exponential `delay × 2^(n-1)`
 * (Knative's exponential: delay, 2×delay, 4×delay, …; Knative's linear starts at 0 × delay, which
 * retries a failing subscriber at once, so meshlet's starts at 1 × delay).
 */
export function backoffDelay(policy: Pick<DeliveryPolicy, 'backoffPolicy' | 'backoffDelayMs'>, n: number): number {
  return policy.backoffPolicy === 'linear' ? policy.backoffDelayMs * n : policy.backoffDelayMs * 2 ** (n - 1)
}

/** Knative's SelectiveRetry: 404 (a subscriber still starting), 408, 409, 429 and 5xx are retried; other answers are final. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 404 || status === 408 || status === 409 || status === 429
}

/**
 * The delay a Retry-After asks for (seconds, or an HTTP date), capped at `maxMs`; 0 when absent,
 * unreadable, or on a status other than 429 and 503 (the two RFC 9110 gives it meaning on).
 */
export function retryAfterDelay(status: number, header: string | string[] | undefined, maxMs: number, now = Date.now()): number {
  if ((status !== 429 && status !== 503) || header === undefined || maxMs <= 0) return 0
  const text = (Array.isArray(header) ? header[0] : header)?.trim() ?? ''
  let ms: number
  if (/^\d{1,10}$/.test(text)) ms = Number(text) * 1000
  else {
    const at = Date.parse(text)
    ms = Number.isNaN(at) ? 0 : at - now
  }
  return Math.min(Math.max(0, ms), maxMs)
}
