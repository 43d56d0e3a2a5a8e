import { describe, expect, it } from 'vitest'
import { backoffDelay, DEFAULT_DELIVERY, isRetryableStatus, resolveDeliveryPolicy, retryAfterDelay } from './delivery-policy.js'

describe('delivery policy', () => {
  it('takes the trigger\'s fields over the broker\'s over the defaults, field by field', () => {
    const p = resolveDeliveryPolicy({ retry: 5 }, { retry: 1, backoffPolicy: 'linear', backoffDelay: 'PT1S', deadLetterSink: { uri: 'http://dls.example/' } })
    expect(p).toEqual({ retry: 5, backoffPolicy: 'linear', backoffDelayMs: 1000, timeoutMs: 30_000, retryAfterMaxMs: 60_000, deadLetterSink: { uri: 'http://dls.example/' } })
    expect(resolveDeliveryPolicy(undefined, undefined)).toMatchObject({ retry: DEFAULT_DELIVERY.retry, backoffPolicy: 'exponential', backoffDelayMs: 200 })
  })

  it('refuses a duration that is not ISO 8601, naming the field', () => {
    expect(() => resolveDeliveryPolicy({ timeout: '5s' }, undefined)).toThrow(/delivery.timeout "5s" is not an ISO 8601 duration/)
  })

  it('backs off linearly (delay × n) or exponentially (delay, 2×, 4×, …)', () => {
    expect([1, 2, 3].map((n) => backoffDelay({ backoffPolicy: 'linear', backoffDelayMs: 100 }, n))).toEqual([100, 200, 300])
    expect([1, 2, 3, 4].map((n) => backoffDelay({ backoffPolicy: 'exponential', backoffDelayMs: 100 }, n))).toEqual([100, 200, 400, 800])
  })

  it('retries what Knative retries: 404, 408, 409, 429 and 5xx', () => {
    const retried = [200, 202, 301, 400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504].filter(isRetryableStatus)
    expect(retried).toEqual([404, 408, 409, 429, 500, 502, 503, 504])
  })

  it('reads Retry-After in seconds or as an HTTP date, on 429 and 503 only, capped', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(retryAfterDelay(429, '2', 60_000, now)).toBe(2000)
    expect(retryAfterDelay(503, 'Thu, 01 Jan 2026 00:00:05 GMT', 60_000, now)).toBe(5000)
    expect(retryAfterDelay(503, '3600', 1500, now)).toBe(1500)
    expect(retryAfterDelay(500, '2', 60_000, now)).toBe(0)
    expect(retryAfterDelay(429, 'soon', 60_000, now)).toBe(0)
    expect(retryAfterDelay(429, '2', 0, now)).toBe(0)
  })
})
