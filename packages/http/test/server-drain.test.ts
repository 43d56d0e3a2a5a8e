/**
 * Graceful drain through each adapter, watched on the wire with hand-driven HTTP/1.1 connections:
 * mesh.close() lets in-flight requests finish, closes idle keep-alive connections, refuses new
 * connections and new requests, bounds a request that never ends by drain.timeout, and moves
 * inspect().state serving → (not-ready →) draining → closed.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, type Mesh } from '@meshlet/core'
import { ADAPTERS, gate, meshFor, RawConnection, serve, Teardown, tryConnect, until, within, type AdapterName, type Gate, type RawResponse } from './fixtures/server-harness.js'

/** Resolves when `mesh` publishes drain phase `phase` on `meshlet:drain`. */
function drainPhase(mesh: Mesh, phase: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      const msg = m as { service: string; phase: string }
      if (msg.service !== mesh.service || msg.phase !== phase) return
      unsubscribe('meshlet:drain', onMessage)
      resolve()
    }
    subscribe('meshlet:drain', onMessage)
  })
}

describe.each(ADAPTERS)('%s adapter drain', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  /** A drain refusal: 503, not processed, connection closing. Fastify answers these itself while it closes. */
  function expectDrainRefusal(res: RawResponse): void {
    expect(res.status).toBe(503)
    expect(res.headers['meshlet-rejected']).toBe('1')
    expect(res.headers.connection).toBe('close')
    const body = JSON.parse(res.body) as { error: unknown; statusCode?: number }
    if (adapter === 'fastify') expect(body).toEqual({ error: 'Service Unavailable', message: 'Service Unavailable', statusCode: 503 })
    else expect(body.error).toMatchObject({ code: ErrorCodes.DRAINING })
  }

  async function setup(service: string, drain: { delay?: number; timeout?: number }) {
    const mesh = await meshFor(t, { service, drain })
    const holds = new Map<string, { entered: Gate<ServerResponse>; release: Gate }>()
    const hold = (id: string) => {
      let h = holds.get(id)
      if (h === undefined) holds.set(id, (h = { entered: gate<ServerResponse>(), release: gate() }))
      return h
    }
    // Handlers still parked at the end are released so nothing outlives the test.
    t.add(() => {
      for (const h of holds.values()) h.release.open()
    })
    let appCalls = 0
    const srv = await serve(adapter, mesh, [
      {
        method: 'GET',
        path: '/fast',
        handler: () => {
          appCalls++
          return { body: { fast: true } }
        },
      },
      {
        method: 'GET',
        path: '/hold/:id',
        handler: async ({ params, res }) => {
          appCalls++
          const h = hold(params.id!)
          h.entered.open(res)
          await h.release.promise
          return { body: { held: params.id } }
        },
      },
    ])
    t.add(() => srv.close())
    const conn = async () => {
      const c = await RawConnection.open(srv.port)
      t.add(() => c.destroy())
      return c
    }
    return { mesh, srv, hold, conn, calls: () => appCalls }
  }

  it('finishes in-flight requests, closes idle connections, refuses new ones, then closes', async () => {
    const { mesh, srv, hold, conn, calls } = await setup('drain-a', { delay: 0, timeout: 10_000 })

    const idle = await conn()
    idle.send('GET', '/fast')
    expect((await idle.next()).status).toBe(200)

    const busy = await conn()
    busy.send('GET', '/hold/1')
    await within(hold('1').entered.promise, 5000, 'the held request to reach the app')
    expect(mesh.inspect().state).toBe('serving')
    expect(mesh.inspect().inbound.inflight).toBe(1)

    let closeResolved = false
    const closing = mesh.close().then(() => void (closeResolved = true))
    // No drain.delay: close() stops accepting in the same tick.
    expect(mesh.inspect().state).toBe('draining')
    expect(mesh.inbound.ready).toBe(false)

    // The idle keep-alive connection is closed by the server without a response on it.
    await within(idle.closed, 5000, 'the idle keep-alive connection to be closed')
    await until(() => !srv.server.listening, 5000, 'the listener to close')
    expect(await tryConnect(srv.port)).toBe('ECONNREFUSED')

    // A request pipelined behind the in-flight one on its kept-alive connection is refused, not run.
    const before = calls()
    const arrived = once(srv.server, 'request')
    busy.send('GET', '/fast')
    // Release only once the server has read it: otherwise the drain ends with it unread in the socket.
    await within(arrived, 5000, 'the pipelined request to reach the server')
    expect(closeResolved).toBe(false)
    expect(mesh.inspect().state).toBe('draining')

    hold('1').release.open()
    const held = await within(busy.next(), 5000, 'the in-flight response')
    expect(held.status).toBe(200)
    expect(JSON.parse(held.body)).toEqual({ held: '1' })

    expectDrainRefusal(await within(busy.next(), 5000, 'the pipelined request to be answered'))
    expect(calls()).toBe(before)

    await within(closing, 5000, 'close() to resolve')
    expect(mesh.inspect().state).toBe('closed')
    expect(mesh.inspect().inbound.inflight).toBe(0)
    await within(busy.closed, 5000, 'the busy connection to be closed')
  })

  it('refuses with 503 meshlet-rejected a new request on a kept-alive connection that finished its request during the drain', async () => {
    const { mesh, srv, hold, conn, calls } = await setup('drain-b', { delay: 0, timeout: 10_000 })
    const a = await conn()
    const b = await conn()
    a.send('GET', '/hold/a')
    b.send('GET', '/hold/b')
    await within(Promise.all([hold('a').entered.promise, hold('b').entered.promise]), 5000, 'both held requests to reach the app')

    const closing = mesh.close()
    // Both connections are busy when the server stops listening, so neither is closed as idle.
    await until(() => !srv.server.listening, 5000, 'the listener to close')
    hold('a').release.open()
    const first = await within(a.next(), 5000, 'a response')
    expect(first.status).toBe(200)
    expect(first.headers.connection).toBe('keep-alive')

    // b is still in flight, so the drain goes on; the client reuses `a` as keep-alive allows.
    const before = calls()
    a.send('GET', '/fast')
    expectDrainRefusal(await within(a.next(), 5000, 'the next request on a to be answered'))
    expect(calls()).toBe(before)
    await within(a.closed, 5000, 'a to be closed after the refusal')

    hold('b').release.open()
    expect((await within(b.next(), 5000, 'b response')).status).toBe(200)
    await within(closing, 5000, 'close() to resolve')
    expect(mesh.inspect().state).toBe('closed')
  })

  it('bounds a request that never finishes by drain.timeout: close() resolves and its connection is closed', async () => {
    const timeout = 300
    const { mesh, hold, conn } = await setup('drain-c', { delay: 0, timeout })
    const stuck = await conn()
    stuck.send('GET', '/hold/never')
    const res = await within(hold('never').entered.promise, 5000, 'the stuck request to reach the app')
    const resClosed = once(res, 'close')

    const t0 = performance.now()
    const closing = mesh.close()
    expect(mesh.inspect().state).toBe('draining')
    await within(closing, timeout + 5000, 'close() to resolve')
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(timeout - 5)
    expect(took).toBeLessThan(timeout + 3000)
    expect(mesh.inspect().state).toBe('closed')

    // The connection was cut with no response; the handler is still parked.
    await within(stuck.closed, 5000, 'the stuck connection to be closed')
    await expect(stuck.next()).rejects.toThrow(/closed before a response/)
    expect(hold('never').release.opened).toBe(false)
    // The server side of the cut request ends right after; only then does it leave the in-flight count.
    await within(resClosed, 5000, 'the stuck response to close')
    expect(res.writableFinished).toBe(false)
    expect(mesh.inspect().inbound.inflight).toBe(0)
  })

  it('keeps serving during drain.delay (not-ready), then stops accepting', async () => {
    const { mesh, srv, conn } = await setup('drain-d', { delay: 500, timeout: 10_000 })
    // One request first: the Express middleware learns its server from a request.
    const warm = await conn()
    warm.send('GET', '/fast')
    expect((await warm.next()).status).toBe(200)

    const stopped = drainPhase(mesh, 'stop-accepting')
    const closing = mesh.close()
    expect(mesh.inspect().state).toBe('not-ready')

    // Peers may still send during the propagation delay: a new connection is served normally.
    const early = await conn()
    early.send('GET', '/fast')
    const res = await within(early.next(), 5000, 'a response during drain.delay')
    expect(res.status).toBe(200)
    expect(res.headers['meshlet-load']).toMatch(/inflight=/)
    expect(mesh.inspect().state).toBe('not-ready')

    await within(stopped, 5000, 'the stop-accepting phase')
    expect(mesh.inspect().state).toBe('draining')
    await within(closing, 5000, 'close() to resolve')
    expect(mesh.inspect().state).toBe('closed')
    expect(srv.server.listening).toBe(false)
    expect(await tryConnect(srv.port)).toBe('ECONNREFUSED')
  })

  it('closes a server that never saw a request: no first request is served after close()', async () => {
    const { mesh, srv, calls } = await setup('drain-e', { delay: 0, timeout: 10_000 })
    await mesh.close()
    expect(mesh.inspect().state).toBe('closed')
    // Attached when it was made: the mesh closed it though it had seen no request.
    expect(srv.server.listening).toBe(false)
    expect(await tryConnect(srv.port)).toBe('ECONNREFUSED')
    expect(calls()).toBe(0)
  })
})
