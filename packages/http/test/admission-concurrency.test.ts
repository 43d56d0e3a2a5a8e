/**
 * Admission control's concurrency limit and FIFO queue through each server adapter, real servers on
 * loopback: a burst of 10× the limit never runs more than the limit at once, the queue stays
 * bounded, the excess gets 503 + meshlet-rejected + MESHLET_ERR_OVERLOADED at once, the load header
 * shows the queue; a queued request leaves with 503 at the queue timeout, 504 at its own deadline,
 * 503 when the server drains, and frees its place when its client goes away; none of those runs.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { ErrorCodes, type Mesh } from '@meshlet/core'
import { ADAPTERS, gate, meshFor, serve, Teardown, until, within, type AdapterName, type Gate, type Started } from './fixtures/server-harness.js'

interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: { error?: { code: string; message: string }; id?: string }
}

describe.each(ADAPTERS)('%s adapter: concurrency limit and queue', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  /** A server whose `/hold/:id` handlers wait for `release`; `ran` lists the ids the app saw. */
  async function setup(concurrency: { limit: number; queue: number; queueTimeout?: string }): Promise<{ mesh: Mesh; srv: Started; ran: string[]; running: () => number; maxRunning: () => number; release: Gate; get: (id: string, headers?: Record<string, string>, signal?: AbortSignal) => Promise<Res> }> {
    const mesh = await meshFor(t, { service: 'orders', admission: { concurrency } })
    const release = gate()
    const ran: string[] = []
    let running = 0
    let maxRunning = 0
    const srv = await serve(adapter, mesh, [
      {
        method: 'GET',
        path: '/hold/:id',
        handler: async ({ params }) => {
          ran.push(params.id!)
          maxRunning = Math.max(maxRunning, ++running)
          await release.promise
          running--
          return { body: { id: params.id } }
        },
      },
    ])
    t.add(() => srv.close())
    // Opened before the servers close, so no handler is left waiting.
    t.add(() => release.open())
    const agent = new Agent({ connections: 256 })
    t.add(() => agent.destroy())
    const get = async (id: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Res> => {
      const r = await request(`${srv.origin}/hold/${id}`, { dispatcher: agent, headers, signal })
      return { status: r.statusCode, headers: r.headers, body: (await r.body.json()) as Res['body'] }
    }
    return { mesh, srv, ran, running: () => running, maxRunning: () => maxRunning, release, get }
  }

  it('runs at most the limit under a burst of 10×, queues at most the queue size and refuses the rest at once, retryable elsewhere', async () => {
    const { mesh, ran, running, maxRunning, release, get } = await setup({ limit: 3, queue: 3, queueTimeout: '10s' })
    const refused: Res[] = []
    const calls = Array.from({ length: 30 }, (_, i) =>
      get(String(i)).then((r) => {
        if (r.status === 503) refused.push(r)
        return r
      }),
    )
    await until(() => refused.length === 24 && running() === 3 && mesh.inspect().inbound.admission.queued === 3, 10_000, '24 refusals, 3 running, 3 queued')
    expect(mesh.inspect().inbound.admission).toMatchObject({ enabled: true, limit: 3, inflight: 3, queued: 3, queueLimit: 3, rejected: { concurrency: 24 } })
    for (const r of refused) {
      expect(r.headers['meshlet-rejected']).toBe('1')
      expect(r.body.error?.code).toBe(ErrorCodes.OVERLOADED)
      expect(r.body.error?.message).toContain('concurrency limit')
    }
    release.open()
    const all = await within(Promise.all(calls), 10_000, 'the burst to finish')
    const served = all.filter((r) => r.status === 200)
    expect(served).toHaveLength(6)
    expect(ran).toHaveLength(6)
    expect(maxRunning()).toBe(3)
    // `<load>; inflight=<n>; queue=<n>`: the first request out of the queue saw two still waiting.
    const loads = served.map((r) => String(r.headers['meshlet-load']))
    for (const l of loads) expect(l).toMatch(/^\d\.\d\d; inflight=\d+; queue=\d+$/)
    expect(loads).toContain('1.00; inflight=3; queue=2')
    expect(mesh.inspect().inbound.admission).toMatchObject({ inflight: 0, queued: 0 })
  })

  it('refuses a request that waited out the queue timeout with 503 + meshlet-rejected, without running it', async () => {
    const { mesh, ran, release, get } = await setup({ limit: 1, queue: 2, queueTimeout: '150ms' })
    const first = get('first')
    await until(() => ran.length === 1, 5000, 'the first request to run')
    const t0 = Date.now()
    const waited = await within(get('waited'), 5000, 'the queue timeout')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    expect(waited.status).toBe(503)
    expect(waited.headers['meshlet-rejected']).toBe('1')
    expect(waited.body.error?.code).toBe(ErrorCodes.OVERLOADED)
    expect(ran).toEqual(['first'])
    expect(mesh.inspect().inbound.admission.rejected).toEqual({ queue_timeout: 1 })
    release.open()
    expect((await first).status).toBe(200)
  })

  it('refuses a queued request whose deadline passes with 504 MESHLET_ERR_DEADLINE, not retryable elsewhere, without running it', async () => {
    const { mesh, ran, release, get } = await setup({ limit: 1, queue: 2, queueTimeout: '10s' })
    const first = get('first')
    await until(() => ran.length === 1, 5000, 'the first request to run')
    const late = await within(get('late', { 'meshlet-deadline': String(Date.now() + 100) }), 5000, 'the deadline in the queue')
    expect(late.status).toBe(504)
    expect(late.headers['meshlet-rejected']).toBeUndefined()
    expect(late.body.error?.code).toBe(ErrorCodes.DEADLINE)
    expect(late.body.error?.message).toContain('admission queue')
    release.open()
    expect((await first).status).toBe(200)
    expect(ran).toEqual(['first'])
    expect(mesh.inspect().inbound.admission.rejected).toEqual({ deadline: 1 })
  })

  it('frees the queue place of a request whose client went away, and never runs it', async () => {
    const { mesh, ran, release, get } = await setup({ limit: 1, queue: 1, queueTimeout: '10s' })
    const first = get('first')
    await until(() => ran.length === 1, 5000, 'the first request to run')
    const ac = new AbortController()
    const gone = get('gone', {}, ac.signal).catch((err: unknown) => err)
    await until(() => mesh.inspect().inbound.admission.queued === 1, 5000, 'the request to queue')
    ac.abort()
    await gone
    await until(() => mesh.inspect().inbound.admission.queued === 0, 5000, 'the queue place to be freed')
    const next = get('next')
    await until(() => mesh.inspect().inbound.admission.queued === 1, 5000, 'the next request to queue')
    release.open()
    expect((await first).status).toBe(200)
    expect((await within(next, 5000, 'the next request')).status).toBe(200)
    expect(ran).toEqual(['first', 'next'])
    expect(mesh.inspect().inbound.admission.rejected).toEqual({})
  })

  it('refuses queued requests with 503 draining + meshlet-rejected when the server shuts down, and finishes the running one', async () => {
    const { mesh, ran, release, get } = await setup({ limit: 1, queue: 2, queueTimeout: '10s' })
    const first = get('first')
    await until(() => ran.length === 1, 5000, 'the first request to run')
    const queued = [get('q1'), get('q2')]
    await until(() => mesh.inspect().inbound.admission.queued === 2, 5000, 'two requests to queue')
    const closed = mesh.close()
    for (const r of await within(Promise.all(queued), 5000, 'the queued requests to be refused')) {
      expect(r.status).toBe(503)
      expect(r.headers['meshlet-rejected']).toBe('1')
      expect(r.body.error?.code).toBe(ErrorCodes.DRAINING)
    }
    release.open()
    expect((await first).status).toBe(200)
    await within(closed, 10_000, 'the mesh to close')
    expect(ran).toEqual(['first'])
    expect(mesh.inspect().inbound.admission.rejected).toEqual({ draining: 2 })
  })
})
