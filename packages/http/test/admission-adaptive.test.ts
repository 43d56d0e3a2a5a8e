/**
 * Adaptive concurrency (opt-in) through each server adapter: handlers that block the event loop
 * make the loop late, a signal only an in-process limiter sees, and the limit shrinks from its
 * start towards minLimit while every request still gets served from the queue.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'
import { runLoad } from './fixtures/client-helpers.js'

describe.each(ADAPTERS)('%s adapter: adaptive concurrency', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('shrinks the limit while handlers keep the event loop late, serving every request', async () => {
    const mesh = await meshFor(t, { service: 'orders', admission: { concurrency: { limit: 16, queue: 100, queueTimeout: '20s' }, adaptive: { minLimit: 2, maxLimit: 32, window: '50ms', eventLoopDelay: '10ms' } } })
    const srv = await serve(adapter, mesh, [
      {
        method: 'GET',
        path: '/work',
        handler: () => {
          const end = performance.now() + 25
          while (performance.now() < end) {
            // Deliberately blocks the event loop.
          }
          return { body: { ok: true } }
        },
      },
    ])
    t.add(() => srv.close())
    const agent = new Agent({ connections: 16 })
    t.add(() => agent.destroy())
    expect(mesh.inspect().inbound.admission).toMatchObject({ adaptive: true, limit: 16 })
    const results = await runLoad(60, 8, async () => {
      const r = await request(`${srv.origin}/work`, { dispatcher: agent })
      await r.body.dump()
      return r.statusCode
    })
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toEqual(Array(60).fill(200))
    const a = mesh.inspect().inbound.admission
    expect(a.limit).toBeLessThan(16)
    expect(a.limit).toBeGreaterThanOrEqual(2)
    expect(a.rejected).toEqual({})
  })
})
