/**
 * Load shedding through each server adapter, real servers on loopback in one process. Only the
 * overloaded instance sheds (the other has no shedding configured, so the process-wide event-loop
 * delay does not make it refuse): its handler blocks the event loop with a busy loop, it sheds with
 * 503 + meshlet-rejected, the client retries on the healthy peer and every call succeeds. While
 * shedding, health paths still pass.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { ErrorCodes, type MeshOptions } from '@meshlet/core'
import { ADAPTERS, meshFor, serve, Teardown, until, type AdapterName } from './fixtures/server-harness.js'
import { Cleanup, call, runLoad, startMesh } from './fixtures/client-helpers.js'

function busy(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // Deliberately blocks the event loop.
  }
}

describe.each(ADAPTERS)('%s adapter: load shedding', (adapter: AdapterName) => {
  const t = new Teardown()
  const cleanup = new Cleanup()
  afterEach(async () => {
    await cleanup.run()
    await t.run()
  })

  async function instance(name: string, admission: MeshOptions['admission'], blockMs: number) {
    const mesh = await meshFor(t, { service: 'orders', ...(admission ? { admission } : {}) })
    const stats = { served: 0 }
    const srv = await serve(adapter, mesh, [
      {
        method: 'POST',
        path: '/work',
        handler: () => {
          busy(blockMs)
          stats.served++
          return { status: 201, body: { by: name } }
        },
      },
      { method: 'GET', path: '/work', handler: () => ({ body: { by: name } }) },
      { method: 'GET', path: '/healthz', handler: () => ({ body: { healthy: name } }) },
      { method: 'GET', path: '/readyz', handler: () => ({ body: { ready: name } }) },
    ])
    t.add(() => srv.close())
    return { mesh, srv, stats }
  }

  it('an instance whose handlers block the event loop sheds, and the healthy peer absorbs the traffic: all calls succeed', async () => {
    const hot = await instance('hot', { shedding: { eventLoopDelay: '20ms' } }, 40)
    const healthy = await instance('healthy', undefined, 0)
    const { agent } = await startMesh(cleanup, { orders: { endpoints: [hot.srv.origin, healthy.srv.origin], outlier: false, breaker: false } })
    const TOTAL = 60
    const results = await runLoad(TOTAL, 6, (n) => call(agent, 'http://orders/work', { method: 'POST', body: JSON.stringify({ n }), headers: { 'content-type': 'application/json' } }))
    expect(results.filter((r) => r.status === 'rejected' || r.value.status !== 201)).toEqual([])
    const shed = hot.mesh.inspect().inbound.admission.rejected.overload ?? 0
    expect(shed).toBeGreaterThan(0)
    expect(hot.stats.served + healthy.stats.served).toBe(TOTAL)
    expect(healthy.stats.served).toBeGreaterThan(hot.stats.served)
    expect(healthy.mesh.inspect().inbound.admission.rejected).toEqual({})
  })

  it('while shedding, /healthz and /readyz pass and other paths get 503 + meshlet-rejected + MESHLET_ERR_OVERLOADED', async () => {
    // A block longer than the sampling interval makes the next sample late by at least 100ms, and
    // the verdict then holds for a whole interval.
    const hot = await instance('hot', { shedding: { eventLoopDelay: '50ms', interval: '500ms' } }, 0)
    const agent = new Agent()
    t.add(() => agent.destroy())
    const get = async (path: string) => {
      const r = await request(`${hot.srv.origin}${path}`, { dispatcher: agent })
      return { status: r.statusCode, headers: r.headers, body: (await r.body.json()) as { error?: { code: string; message: string } } }
    }
    expect((await get('/work')).status).toBe(200)
    busy(600)
    await until(() => hot.mesh.inspect().inbound.admission.overloaded, 5000, 'the shedder to see the blocked loop')
    const [health, ready, work] = await Promise.all([get('/healthz'), get('/readyz'), get('/work')])
    expect(health.status).toBe(200)
    expect(ready.status).toBe(200)
    expect(work.status).toBe(503)
    expect(work.headers['meshlet-rejected']).toBe('1')
    expect(work.body.error?.code).toBe(ErrorCodes.OVERLOADED)
    expect(work.body.error?.message).toMatch(/event-loop delay \d+ms/)
    expect(hot.mesh.inspect().inbound.admission).toMatchObject({ overloaded: true, rejected: { overload: 1 } })
    expect(hot.mesh.inspect().inbound.admission.eventLoopDelayMs).toBeGreaterThan(50)
  })
})

