/**
 * Routes on the client: weighted splits between revisions (exact over time), header matches, a
 * documented fallback when a revision has no endpoint, live weight changes, sticky splits, and
 * fault injection. Backends are real servers on loopback; their revision is their endpoint label.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { builtinResourceRegistry, ErrorCodes, isMeshletError, type RouteRule } from '@meshlet/core'
import { Cleanup, call, runLoad, startBackend, startMesh, type TestBackend } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function revisions(): Promise<{ v1: TestBackend; v2: TestBackend; endpoints: { url: string; revision: string }[] }> {
  const v1 = await startBackend(cleanup, (req, res) => res.end('v1'))
  const v2 = await startBackend(cleanup, (req, res) => res.end('v2'))
  return { v1, v2, endpoints: [{ url: v1.url, revision: 'v1' }, { url: v2.url, revision: 'v2' }] }
}

function count(results: PromiseSettledResult<{ body: string; status: number }>[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of results) {
    const k = r.status === 'fulfilled' ? (r.value.status === 200 ? r.value.body : String(r.value.status)) : 'error'
    out[k] = (out[k] ?? 0) + 1
  }
  return out
}

describe('routes', () => {
  it('splits 95/5 and 50/50 within ±1% over 10,000 requests', async () => {
    const { endpoints } = await revisions()
    const split = (w: number): RouteRule[] => [{ split: [{ revision: 'v1', weight: 100 - w }, { revision: 'v2', weight: w }] }]
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints, routes: split(5) } })
    const canary = count(await runLoad(10_000, 16, () => call(agent, 'http://payments/x')))
    expect(canary.v2! / 10_000).toBeGreaterThanOrEqual(0.04)
    expect(canary.v2! / 10_000).toBeLessThanOrEqual(0.06)
    expect(canary.v1! + canary.v2!).toBe(10_000)

    mesh.applyRoutes('payments', [{ service: 'payments', rules: split(50) }])
    const even = count(await runLoad(10_000, 16, () => call(agent, 'http://payments/x')))
    expect(Math.abs(even.v2! - 5000)).toBeLessThanOrEqual(100)
    expect(even.v1! + even.v2!).toBe(10_000)
  })

  it('routes a header match to the canary and everything else by the next rule', async () => {
    const { endpoints } = await revisions()
    const { agent } = await startMesh(cleanup, {
      payments: {
        endpoints,
        routes: [
          { match: { headers: { 'x-canary': '1' } }, split: [{ revision: 'v2', weight: 100 }] },
          { match: { path: { prefix: '/api/' }, method: 'GET' }, split: [{ revision: 'v1', weight: 100 }] },
        ],
      },
    })
    for (let i = 0; i < 20; i++) {
      expect((await call(agent, 'http://payments/api/x', { headers: { 'X-Canary': '1' } })).body).toBe('v2')
      expect((await call(agent, 'http://payments/api/x')).body).toBe('v1')
    }
  })

  it('falls back to any ready revision when the routed one has no endpoint, instead of failing', async () => {
    const { v1 } = await revisions()
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [{ url: v1.url, revision: 'v1' }], routes: [{ split: [{ revision: 'v2', weight: 100 }] }] } })
    const r = count(await runLoad(200, 8, () => call(agent, 'http://payments/x')))
    expect(r).toEqual({ v1: 200 })
  })

  it('changes weights live under load with no failed request (blue/green switch and rollback)', async () => {
    const { endpoints } = await revisions()
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints, routes: [{ split: [{ revision: 'v1', weight: 100 }, { revision: 'v2', weight: 0 }] }] } })
    const to = (v: 'v1' | 'v2') => mesh.applyRoutes('payments', [{ service: 'payments', rules: [{ split: [{ revision: 'v1', weight: v === 'v1' ? 100 : 0 }, { revision: 'v2', weight: v === 'v2' ? 100 : 0 }] }] }])
    const results = await runLoad(3000, 16, async (i) => {
      if (i === 1000) to('v2')
      if (i === 2000) to('v1')
      return call(agent, 'http://payments/x')
    })
    const c = count(results)
    expect(c.error ?? 0).toBe(0)
    expect(c.v1! + c.v2!).toBe(3000)
    expect(c.v2).toBeGreaterThan(900)
    expect(c.v2).toBeLessThan(1100)
    // After the rollback every request goes to v1 again.
    expect(count(await runLoad(100, 8, () => call(agent, 'http://payments/x')))).toEqual({ v1: 100 })
  })

  it('keeps a sticky split: one header value always reaches the same revision', async () => {
    const { endpoints } = await revisions()
    const { agent } = await startMesh(cleanup, { payments: { endpoints, routes: [{ sticky: { header: 'x-user' }, split: [{ revision: 'v1', weight: 50 }, { revision: 'v2', weight: 50 }] }] } })
    const seen = new Map<string, Set<string>>()
    for (let u = 0; u < 40; u++) {
      for (let i = 0; i < 3; i++) {
        const body = (await call(agent, 'http://payments/x', { headers: { 'x-user': `user-${u}` } })).body
        ;(seen.get(`user-${u}`) ?? seen.set(`user-${u}`, new Set()).get(`user-${u}`)!).add(body)
      }
    }
    expect([...seen.values()].every((s) => s.size === 1)).toBe(true)
    const revs = new Set([...seen.values()].map((s) => [...s][0]))
    expect(revs).toEqual(new Set(['v1', 'v2']))
  })

  it('injects aborts at the configured rate, delays, and header-triggered faults only with the header', async () => {
    const { v1 } = await revisions()
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints: [{ url: v1.url, revision: 'v1' }], retries: false, routes: [{ fault: { abort: { status: 503, percent: 20 } } }] } })
    const seenBefore = v1.seen.length
    const r = count(await runLoad(5000, 16, () => call(agent, 'http://payments/x')))
    expect(r['503']! / 5000).toBeGreaterThan(0.17)
    expect(r['503']! / 5000).toBeLessThan(0.23)
    expect(v1.seen.length - seenBefore).toBe(r.v1) // aborted calls never reached the server

    mesh.applyRoutes('payments', [{ service: 'payments', rules: [{ fault: { header: 'x-fault', abort: { status: 418, percent: 100 } } }] }])
    expect((await call(agent, 'http://payments/x')).status).toBe(200)
    expect((await call(agent, 'http://payments/x', { headers: { 'x-fault': 'yes' } })).status).toBe(418)

    mesh.applyRoutes('payments', [{ service: 'payments', rules: [{ fault: { delay: { fixed: 150, percent: 100 } } }] }])
    const t0 = performance.now()
    expect((await call(agent, 'http://payments/x')).status).toBe(200)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140)
  })

  it('gives matching requests their own retries and per-try timeout', async () => {
    let n = 0
    const flaky = await startBackend(cleanup, (req, res) => {
      req.resume()
      res.writeHead(n++ % 2 === 0 ? 503 : 200).end('ok')
    })
    const { agent } = await startMesh(cleanup, {
      payments: { endpoints: [{ url: flaky.url, revision: 'v1' }], retries: { attempts: 0, backoff: { base: 1, max: 5 } }, breaker: false, outlier: false, routes: [{ match: { path: { prefix: '/retry/' } }, retries: { attempts: 2 } }] },
    })
    expect((await call(agent, 'http://payments/retry/a')).status).toBe(200) // 503, then the rule's retry
    expect((await call(agent, 'http://payments/other')).status).toBe(503) // the destination's policy: no retries
  })

  it('mirrors a share of requests to a shadow revision without slowing or failing the caller', async () => {
    const primary = await startBackend(cleanup, (req, res) => res.end('v1'))
    // The shadow is slow and broken; the caller must see neither.
    const shadow = await startBackend(cleanup, (req, res) => {
      req.resume()
      setTimeout(() => res.writeHead(500).end('shadow'), 300)
    })
    const { agent, mesh } = await startMesh(cleanup, {
      payments: {
        endpoints: [
          { url: primary.url, revision: 'v1' },
          { url: shadow.url, revision: 'shadow' },
        ],
        routes: [{ split: [{ revision: 'v1', weight: 100 }], mirror: { revision: 'shadow', percent: 100 } }],
      },
    })
    const t0 = performance.now()
    for (let i = 0; i < 20; i++) expect(await call(agent, 'http://payments/m', { method: 'POST', body: `order-${i}` })).toMatchObject({ status: 200, body: 'v1' })
    expect(performance.now() - t0).toBeLessThan(20 * 300) // no call waited for the shadow
    await vi.waitFor(() => expect(shadow.seen.length).toBe(20), { timeout: 5000 })
    expect(shadow.seen.every((r) => r.headers['meshlet-mirror'] === '1' && r.method === 'POST')).toBe(true)
    expect(primary.seen.length).toBe(20)

    mesh.applyRoutes('payments', [{ service: 'payments', rules: [{ split: [{ revision: 'v1', weight: 100 }], mirror: { revision: 'shadow', percent: 25 } }] }])
    const before = shadow.seen.length
    await runLoad(2000, 16, () => call(agent, 'http://payments/m'))
    await vi.waitFor(() => expect(shadow.seen.length - before).toBeGreaterThan(400), { timeout: 10_000 })
    expect(shadow.seen.length - before).toBeLessThan(600)
  })

  it('refuses invalid routes with field-level errors, in options and as Route resources', async () => {
    const bad: RouteRule[] = [
      { split: [{ revision: 'v1', weight: 90 }, { revision: 'v2', weight: 5 }] },
      { split: [{ revision: 'V_2', weight: 100 }] },
      { match: { path: { regex: '^/(?=a)b$' } }, split: [{ revision: 'v1', weight: 100 }] },
      { match: { path: { prefix: '/a', exact: '/a' } }, split: [{ revision: 'v1', weight: 100 }] },
    ]
    const expected = ['routes[0].split', 'routes[1].split[0].revision', 'routes[2].match.path.regex', 'routes[3].match.path']
    for (const [i, rule] of bad.entries()) {
      let error: unknown
      try {
        await startMesh(cleanup, { payments: { endpoints: ['http://127.0.0.1:9'], routes: [...Array<RouteRule>(i).fill({ split: [{ revision: 'v1', weight: 100 }] }), rule] } })
      } catch (e) {
        error = e
      }
      expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
      expect((error as { issues: { path: string }[] }).issues.map((x) => x.path)).toEqual([`services.payments.${expected[i]}`])
    }

    const issues: { path: string; message: string }[] = []
    builtinResourceRegistry().check({ apiVersion: 'meshlet.dev/v1', kind: 'Route', metadata: { name: 'payments' }, spec: { service: 'payments', rules: bad } }, issues)
    // The schema reports the malformed revision; the cross-field checks run once the shape is right.
    expect(issues.map((i) => i.path)).toEqual(['spec.rules[1].split[0].revision'])
    const shapeOk: unknown[] = []
    builtinResourceRegistry().check({ apiVersion: 'meshlet.dev/v1', kind: 'Route', metadata: { name: 'payments' }, spec: { service: 'payments', rules: [bad[0], bad[2], bad[3]] } }, shapeOk as never)
    expect((shapeOk as { path: string }[]).map((i) => i.path)).toEqual(['spec.rules[0].split', 'spec.rules[1].match.path.regex', 'spec.rules[2].match.path'])
    expect((shapeOk as { path: string; message: string }[])[1]!.message).toMatch(/not a valid RE2 regular expression .*no lookaround/)
  })
})
