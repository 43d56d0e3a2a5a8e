/**
 * Spike shielding end to end: two instances of "orders", one with a concurrency limit, one with
 * room, and a client mesh calling through meshAgent. A burst of 10× the limited instance's capacity
 * of non-idempotent POSTs: the limited instance never runs more than its limit, refuses the excess
 * before processing (503 + meshlet-rejected), the client retries those on the other instance, and
 * every call succeeds, each processed exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'
import { Cleanup, call, runLoad, startMesh } from './fixtures/client-helpers.js'

describe.each(ADAPTERS)('%s adapter: admission refusals are retried elsewhere', (adapter: AdapterName) => {
  const t = new Teardown()
  const cleanup = new Cleanup()
  afterEach(async () => {
    await cleanup.run()
    await t.run()
  })

  it('a burst of 10× capacity: the limit holds, refused POSTs go to the other instance, all succeed once', async () => {
    const LIMIT = 2
    const QUEUE = 2
    const processed: string[] = []
    const instance = async (name: string, admission: boolean) => {
      const mesh = await meshFor(t, { service: 'orders', ...(admission ? { admission: { concurrency: { limit: LIMIT, queue: QUEUE, queueTimeout: '5s' } } } : {}) })
      const stats = { running: 0, max: 0, served: 0 }
      const srv = await serve(adapter, mesh, [
        {
          method: 'POST',
          path: '/orders',
          handler: async ({ body }) => {
            stats.max = Math.max(stats.max, ++stats.running)
            // Work that takes a while, so the burst really overlaps.
            await new Promise((r) => setTimeout(r, 20))
            stats.running--
            stats.served++
            processed.push((body as { n: number }).n + '@' + name)
            return { status: 201, body: { by: name } }
          },
        },
      ])
      t.add(() => srv.close())
      return { mesh, srv, stats }
    }
    const limited = await instance('limited', true)
    const roomy = await instance('roomy', false)
    const { agent } = await startMesh(cleanup, { orders: { endpoints: [limited.srv.origin, roomy.srv.origin], outlier: false, breaker: false } })

    const TOTAL = 10 * (LIMIT + QUEUE)
    const results = await runLoad(TOTAL, TOTAL, (n) => call(agent, 'http://orders/orders', { method: 'POST', body: JSON.stringify({ n }), headers: { 'content-type': 'application/json' } }))
    const failed = results.filter((r) => r.status === 'rejected' || r.value.status !== 201)
    expect(failed).toEqual([])
    expect(limited.stats.max).toBeLessThanOrEqual(LIMIT)
    const admission = limited.mesh.inspect().inbound.admission
    expect(admission.rejected.concurrency).toBeGreaterThan(0)
    expect(admission).toMatchObject({ inflight: 0, queued: 0 })
    // Every call processed exactly once, by one instance or the other.
    expect(processed.map((p) => Number(p.split('@')[0])).sort((a, b) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i))
    expect(limited.stats.served + roomy.stats.served).toBe(TOTAL)
    expect(roomy.stats.served).toBeGreaterThanOrEqual(admission.rejected.concurrency!)
  })
})
