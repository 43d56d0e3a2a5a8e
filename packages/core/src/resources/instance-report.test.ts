import { describe, expect, it } from 'vitest'
import type { ConfigIssue } from '../errors.js'
import { checkReport, fitReport, MAX_REPORT_BYTES, type InstanceReport } from './instance-report.js'

const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v))

/** A report shaped like mesh.ts `#report`, with `n` destinations of `m` endpoints. */
function meshReport(n: number, m: number): InstanceReport {
  const destinations: InstanceReport['destinations'] = {}
  for (let d = 0; d < n; d++) {
    destinations[`svc-${String(d).padStart(2, '0')}`] = {
      breaker: 'closed',
      endpoints: Array.from({ length: m }, (_, i) => ({ url: `http://10.0.${d}.${i}:8080`, latencyMs: 1.25, inflight: 0, requests: 1200, failures: 3, ejected: false })),
    }
  }
  return {
    state: 'serving',
    inflight: 2,
    utilization: 0.12,
    admission: { enabled: true, limit: 100, adaptive: false, inflight: 2, queued: 0, queueLimit: 50, overloaded: false, eventLoopDelayMs: 0, rejected: { queue: 1 } },
    configVersion: 7,
    destinations,
  }
}

describe('instance reports', () => {
  it('keeps what a mesh reports, unchanged, when it fits', () => {
    const r = meshReport(2, 5)
    const issues: ConfigIssue[] = []
    expect(checkReport(r, issues)).toEqual(r)
    expect(issues).toEqual([])
  })

  it('drops unknown fields at every level (a newer mesh keeps its lease) and refuses known fields of the wrong type, naming them', () => {
    const issues: ConfigIssue[] = []
    const r = checkReport({ state: 'serving', future: 'x'.repeat(100_000), destinations: { a: { breaker: 'open', extra: 1, endpoints: [{ url: 'u', secret: 'x' }] } } }, issues)
    expect(r).toEqual({ state: 'serving', destinations: { a: { breaker: 'open', endpoints: [{ url: 'u' }] } } })
    const bad: ConfigIssue[] = []
    expect(checkReport({ inflight: -1, admission: { limit: 'lots' }, destinations: { a: { endpoints: 'none' } } }, bad)).toBeUndefined()
    expect(bad.map((i) => i.path)).toEqual(['report.inflight', 'report.admission.limit', 'report.destinations.a.endpoints'])
  })

  it('refuses more destinations or endpoints than it would ever keep, before measuring them', () => {
    const issues: ConfigIssue[] = []
    expect(checkReport(meshReport(300, 1), issues)).toBeUndefined()
    expect(issues[0]).toMatchObject({ path: 'report.destinations', message: expect.stringContaining('at most 256') })
  })

  it('shortens a report over the cap to fit: endpoint lists first, then destinations in name order, marked truncated', () => {
    const big = meshReport(10, 50)
    expect(size(big)).toBeGreaterThan(MAX_REPORT_BYTES * 5)
    const fitted = fitReport(big)
    expect(size(fitted)).toBeLessThanOrEqual(MAX_REPORT_BYTES)
    expect(fitted.truncated).toBe(true)
    expect(fitted.state).toBe('serving')
    expect(fitted.admission).toEqual(big.admission)
    const names = Object.keys(fitted.destinations!)
    expect(names[0]).toBe('svc-00')
    // The first destinations are whole; only the last kept may have lost endpoints.
    for (const n of names.slice(0, -1)) expect(fitted.destinations![n]!.endpoints).toHaveLength(50)
    // It fills the budget: less than one endpoint's worth is left unused.
    expect(MAX_REPORT_BYTES - size(fitted)).toBeLessThan(200)
  })

  it('fits to any budget, down to a bare marker', () => {
    for (const max of [50, 200, 1000, 3000]) expect(size(fitReport(meshReport(3, 20), max))).toBeLessThanOrEqual(max)
    expect(fitReport(meshReport(3, 20), 20)).toEqual({ truncated: true })
  })
})
