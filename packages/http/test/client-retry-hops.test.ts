/**
 * Retries do not multiply along a chain. edge → A → B → C, every hop meshed with the default
 * retry policy (3 attempts, a budget of 20 % + 10/s), and C failing every request with 503: without
 * bounds each hop's 3 attempts would make 27 at C per edge request. Retries are marked
 * (`meshlet-attempt`), a hop serving a retry does not retry again, and each budget caps bursts, so
 * C sees about 1.64 requests per edge request plus the budgets' reserves (under 2×). Breakers are off here so that they do not hide
 * what retries do (they would open and shed most of the load).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { meshAgent } from '@meshlet/http'
import { meshFor, serve, Teardown } from './fixtures/server-harness.js'

async function failingC(t: Teardown): Promise<{ url: string; seen: { retried: number; total: number } }> {
  const seen = { retried: 0, total: 0 }
  const server: Server = createServer((req, res) => {
    seen.total++
    if (req.headers['meshlet-attempt'] !== undefined) seen.retried++
    res.writeHead(503, { 'content-type': 'text/plain' }).end('C is down')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.add(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

describe('retries across hops', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('a failing last hop sees 1.64× the edge requests plus the budgets\' reserves (under 2× at load), not 3³', async () => {
    const c = await failingC(t)
    const meshB = await meshFor(t, { service: 'b', services: { c: { endpoints: [c.url], breaker: false } } })
    const agentB = meshAgent(meshB)
    t.add(() => agentB.close())
    const b = await serve('node:http', meshB, [
      {
        method: 'GET',
        path: '/work',
        handler: async () => {
          const res = await agentB.request({ origin: 'http://c', path: '/work', method: 'GET' })
          await res.body.dump()
          return { status: res.statusCode, body: { from: 'b' } }
        },
      },
    ])
    t.add(() => b.close())
    const meshA = await meshFor(t, { service: 'a', services: { b: { endpoints: [b.origin], breaker: false } } })
    const agentA = meshAgent(meshA)
    t.add(() => agentA.close())
    const a = await serve('node:http', meshA, [
      {
        method: 'GET',
        path: '/work',
        handler: async () => {
          const res = await agentA.request({ origin: 'http://b', path: '/work', method: 'GET' })
          await res.body.dump()
          return { status: res.statusCode, body: { from: 'a' } }
        },
      },
    ])
    t.add(() => a.close())
    const edge = await meshFor(t, { service: 'edge', services: { a: { endpoints: [a.origin], breaker: false } } })
    const agent = meshAgent(edge)
    t.add(() => agent.close())

    const requests = 600
    const start = performance.now()
    let next = 0
    const statuses: number[] = []
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < requests) {
          next++
          const res = await agent.request({ origin: 'http://a', path: '/work', method: 'GET' })
          await res.body.dump()
          statuses.push(res.statusCode)
        }
      }),
    )
    const seconds = Math.ceil((performance.now() - start) / 1000)
    expect(statuses.every((s) => s === 503)).toBe(true)
    expect(statuses).toHaveLength(requests)
    // Each budget lets 20 % of the calls it funds be retried, plus its reserve r (two seconds' worth
    // at once, then 10/s). The edge retries 0.2N + r of its N calls; A retries only for the N calls
    // that were not retries (0.2N + r); B for the 1.2N + r that were not: C sees 1.64N + 3.2r. At the
    // rates here that is under 2N (the bound). Without the marker B and A would also
    // retry the retries (over 2N, measured); without budgets it would be 27N.
    const reserve = 20 + 10 * seconds
    const figure = `in ${seconds} s, C saw ${c.seen.total} requests (${(c.seen.total / requests).toFixed(2)}× the edge's ${requests}), ${c.seen.retried} of them retries`
    expect(c.seen.total, figure).toBeLessThanOrEqual(Math.ceil(1.64 * requests + 3.2 * reserve))
    expect(c.seen.retried).toBeGreaterThan(0) // B still retries the calls it serves first-hand
  })
})
