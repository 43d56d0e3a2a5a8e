import type { ConfigIssue } from '@meshlet/core'
import { describe, expect, it } from 'vitest'
import { deliverySpecSchema, destinationSchema, parseIsoDuration } from './delivery-spec.js'

function issuesOf(schema: { check(v: unknown, path: string, issues: ConfigIssue[]): unknown }, v: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  schema.check(v, 'spec.delivery', issues)
  return issues
}

describe('parseIsoDuration', () => {
  it('reads the durations Knative writes', () => {
    expect(parseIsoDuration('PT0.2S')).toBe(200)
    expect(parseIsoDuration('PT1M')).toBe(60_000)
    expect(parseIsoDuration('PT1M30S')).toBe(90_000)
    expect(parseIsoDuration('PT1H')).toBe(3_600_000)
    expect(parseIsoDuration('P1D')).toBe(86_400_000)
    expect(parseIsoDuration('P1DT2H')).toBe(93_600_000)
    expect(parseIsoDuration('PT0,5S')).toBe(500)
    expect(parseIsoDuration('PT1.5M')).toBe(90_000)
    expect(parseIsoDuration('PT0S')).toBe(0)
  })

  it('refuses anything else, strictly', () => {
    for (const bad of ['', 'P', 'PT', 'P1DT', '1s', '200ms', 'pt1s', 'PT1.5M30S', '-PT1S', 'P1Y', 'P1M', 'P1W', 'PT1S ', ' PT1S', 'PT1234567890S', 'PT1.1234567890S', 'PT1S1M', `PT${'1'.repeat(100)}S`]) {
      expect(parseIsoDuration(bad), bad).toBeUndefined()
    }
    expect(parseIsoDuration(200)).toBeUndefined()
    expect(parseIsoDuration(null)).toBeUndefined()
  })
})

describe('deliverySpecSchema', () => {
  it('accepts Knative delivery as written, durations kept as strings', () => {
    const spec = { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S', timeout: 'PT30S', retryAfterMax: 'PT2M', deadLetterSink: { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'dlq' }, uri: '/dead' } }
    const issues: ConfigIssue[] = []
    expect(deliverySpecSchema.check(spec, 'spec.delivery', issues)).toEqual(spec)
    expect(issues).toEqual([])
  })

  it('names the field and what is wrong', () => {
    expect(issuesOf(deliverySpecSchema, { retry: 101 })).toEqual([{ path: 'spec.delivery.retry', message: '101 is too large; the maximum is 100' }])
    expect(issuesOf(deliverySpecSchema, { retry: -1 })[0]!.path).toBe('spec.delivery.retry')
    expect(issuesOf(deliverySpecSchema, { backoffDelay: '200ms' })).toEqual([{ path: 'spec.delivery.backoffDelay', message: '"200ms" is not an ISO 8601 duration; write it like "PT0.2S", "PT30S", "PT1M30S" or "P1D"' }])
    expect(issuesOf(deliverySpecSchema, { backoffDelay: 'PT2H' })).toEqual([{ path: 'spec.delivery.backoffDelay', message: '"PT2H" is too long; the maximum is PT1H' }])
    expect(issuesOf(deliverySpecSchema, { timeout: 'PT0S' })[0]!.message).toContain('too short')
    expect(issuesOf(deliverySpecSchema, { backoffPolicy: 'fibonacci' })[0]!.path).toBe('spec.delivery.backoffPolicy')
    expect(issuesOf(deliverySpecSchema, { retries: 3 })[0]).toEqual({ path: 'spec.delivery.retries', message: 'is not a known field; known fields: retry, backoffPolicy, backoffDelay, timeout, retryAfterMax, deadLetterSink' })
  })
})

describe('destinationSchema', () => {
  it('needs ref or uri', () => {
    expect(issuesOf(destinationSchema, {})).toEqual([{ path: 'spec.delivery', message: 'needs ref (a mesh service) or uri (an absolute http or https URL)' }])
  })

  it('takes a mesh service, a path on it, or an absolute http(s) URL', () => {
    expect(issuesOf(destinationSchema, { ref: { name: 'notify' } })).toEqual([])
    expect(issuesOf(destinationSchema, { ref: { name: 'notify' }, uri: '/hooks/order' })).toEqual([])
    expect(issuesOf(destinationSchema, { uri: 'https://hooks.example.com/x' })).toEqual([])
    expect(issuesOf(destinationSchema, { uri: '/hooks' })[0]!.message).toContain('is not an absolute http or https URL')
    expect(issuesOf(destinationSchema, { uri: 'ftp://x/y' })[0]!.path).toBe('spec.delivery.uri')
    expect(issuesOf(destinationSchema, { ref: { name: 'notify' }, uri: 'http://x/y' })[0]!.message).toContain('must start with "/"')
    expect(issuesOf(destinationSchema, { ref: { name: 'Notify_Svc' } })[0]!.path).toBe('spec.delivery.ref.name')
    expect(issuesOf(destinationSchema, { ref: { kind: 'Deployment', name: 'x' } })[0]!.path).toBe('spec.delivery.ref.kind')
  })
})
