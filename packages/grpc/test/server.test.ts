/** Server interceptors: admission of metadata, load report, drain, and deadlines across HTTP → gRPC. */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { request } from 'undici'
import { callScope, createMesh, DEADLINE_HEADER, LOAD_HEADER, REJECTED_HEADER, type Mesh } from '@meshlet/core'
import { createMeshServer, meshAgent } from '@meshlet/http'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { EchoClientCtor, insecure, startBackend, unary, type EchoClient } from './fixtures/echo.js'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function meshFor(service: string, services: Record<string, unknown> = {}): Promise<Mesh> {
  const mesh = await createMesh({ service, shutdownSignals: false, services: services as never })
  cleanup.push(() => mesh.close())
  return mesh
}

/** A plain grpc-js client straight to `port`, so tests can send any metadata. */
function rawClient(port: number): EchoClient {
  const c = new EchoClientCtor(`127.0.0.1:${port}`, insecure)
  cleanup.push(() => c.close())
  return c
}

function withMeta(entries: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata()
  for (const [k, v] of Object.entries(entries)) md.set(k, v)
  return md
}

describe('inbound metadata', () => {
  it('rejects a malformed meshlet-deadline with INVALID_ARGUMENT and a clear message, and keeps serving', async () => {
    const mesh = await meshFor('echo')
    const b = await startBackend('a', { mesh })
    cleanup.push(() => b.server.forceShutdown())
    const client = rawClient(b.port)
    for (const bad of ['soon', '-5', '1e12', '12345678901234567890', 'x'.repeat(4000)]) {
      const err = await unary(client, { text: 'x' }, {}, withMeta({ [DEADLINE_HEADER]: bad })).catch((e: grpc.ServiceError) => e)
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
      expect((err as grpc.ServiceError).details).toMatch(/meshlet-deadline must be an absolute time in milliseconds since the epoch/)
    }
    expect(b.calls).toBe(0)
    // Metadata larger than grpc-js accepts is refused by grpc-js itself; the server stays up.
    await unary(client, { text: 'x' }, {}, withMeta({ [DEADLINE_HEADER]: '9'.repeat(20_000) })).catch((e: grpc.ServiceError) => e)
    expect((await unary(client, { text: 'ok' })).text).toBe('ok')
    expect(mesh.inbound.inflight).toBe(0)
  })

  it('answers DEADLINE_EXCEEDED, unprocessed, for a deadline already past', async () => {
    const mesh = await meshFor('echo')
    const b = await startBackend('a', { mesh })
    cleanup.push(() => b.server.forceShutdown())
    const err = await unary(rawClient(b.port), { text: 'x' }, {}, withMeta({ [DEADLINE_HEADER]: String(Date.now() - 10) })).catch((e: grpc.ServiceError) => e)
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect(b.calls).toBe(0)
  })

  it('runs the handler in a call scope with the earlier of meshlet-deadline and grpc-timeout', async () => {
    const mesh = await meshFor('echo')
    let scope: number | undefined
    const b = await startBackend('a', { mesh, handler: () => ((scope = callScope.getStore()?.deadline), { from: 'a' }) })
    cleanup.push(() => b.server.forceShutdown())
    const client = rawClient(b.port)
    const d = Date.now() + 5000
    await unary(client, { text: 'x' }, { deadline: Date.now() + 60_000 }, withMeta({ [DEADLINE_HEADER]: String(d) }))
    expect(scope).toBe(d)
    await unary(client, { text: 'x' }, { deadline: Date.now() + 1000 }, withMeta({ [DEADLINE_HEADER]: String(d) }))
    expect(scope!).toBeLessThan(Date.now() + 1100)
  })

  it('sends the load report in trailing metadata and feeds it to the client balancer', async () => {
    const mesh = await meshFor('echo')
    const b = await startBackend('a', { mesh })
    cleanup.push(() => b.server.forceShutdown())
    const trailers = await new Promise<grpc.Metadata>((resolve, reject) => {
      const call = (rawClient(b.port).Echo as unknown as (...a: unknown[]) => grpc.ClientUnaryCall)({ text: 'x' }, (err: Error | null) => err && reject(err))
      call.on('status', (s: grpc.StatusObject) => resolve(s.metadata))
    })
    expect(String(trailers.get(LOAD_HEADER)[0])).toMatch(/^\d\.\d\d; inflight=\d+$/)
  })
})

describe('in flight', () => {
  it('a call that outlives its deadline on the server is counted out of flight (grpc-js ends it itself)', async () => {
    const mesh = await meshFor('echo')
    const b = await startBackend('a', { mesh, handler: () => new Promise(() => {}) })
    cleanup.push(() => b.server.forceShutdown())
    const err = await unary(rawClient(b.port), { text: 'x' }, { deadline: Date.now() + 200 }).catch((e: grpc.ServiceError) => e)
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    for (let i = 0; i < 50 && mesh.inbound.inflight > 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(mesh.inbound.inflight).toBe(0)
  })
})

describe('drain', () => {
  it('mesh.close() lets in-flight calls finish, refuses new ones as not processed, then stops the server', async () => {
    const mesh = await createMesh({ service: 'echo', shutdownSignals: false, drain: { timeout: '3s' } })
    const b = await startBackend('a', { mesh })
    cleanup.push(() => b.server.forceShutdown())
    const client = rawClient(b.port)
    await unary(client, { text: 'warm' })
    const inflight = unary(client, { text: 'slow', delayMs: 300 })
    await new Promise((r) => setTimeout(r, 50))
    const closed = mesh.close()
    await new Promise((r) => setTimeout(r, 20))
    // A call on the open connection while draining: refused, marked not processed.
    const refused = await new Promise<grpc.StatusObject>((resolve) => {
      const call = (client.Echo as unknown as (...a: unknown[]) => grpc.ClientUnaryCall)({ text: 'late' }, () => undefined)
      call.on('status', resolve)
    })
    expect(refused.code).toBe(grpc.status.UNAVAILABLE)
    if (refused.metadata.get(REJECTED_HEADER).length) expect(refused.details).toMatch(/shutting down/)
    expect((await inflight).text).toBe('slow')
    await closed
    expect(mesh.inspect().state).toBe('closed')
  })

  it('forces the server down once the in-flight deadlines have passed', async () => {
    const mesh = await createMesh({ service: 'echo', shutdownSignals: false, drain: { timeout: '20s' } })
    const b = await startBackend('a', { mesh })
    cleanup.push(() => b.server.forceShutdown())
    const hung = unary(rawClient(b.port), { text: 'x', delayMs: 10_000 }, {}, withMeta({ [DEADLINE_HEADER]: String(Date.now() + 400) })).catch((e: grpc.ServiceError) => e)
    await new Promise((r) => setTimeout(r, 50))
    const t0 = Date.now()
    await mesh.close()
    expect(Date.now() - t0).toBeLessThan(3000)
    expect((await hung) as grpc.ServiceError).toHaveProperty('code')
  })
})

describe('HTTP → gRPC, two hops', () => {
  it('the gRPC server sees the HTTP caller\'s deadline, reduced, and cancellation propagates', async () => {
    // payments: a gRPC server through meshlet.
    const payments = await meshFor('payments')
    let seen: { scope: number; grpc: number } | undefined
    let cancelled = false
    const backend = await startBackend('payments', {
      mesh: payments,
      handler: async (req, call) => {
        seen = { scope: callScope.getStore()!.deadline, grpc: Number(call.getDeadline()) }
        if (req.count) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, req.count)
            call.on('cancelled', () => {
              cancelled = true
              clearTimeout(t)
              resolve()
            })
          })
        }
        return { from: 'payments' }
      },
    })
    cleanup.push(() => backend.server.forceShutdown())
    // orders: an HTTP server through meshlet that calls payments over gRPC with no deadline of its own.
    const orders = await meshFor('orders', { payments: { endpoints: [backend.url], timeout: '30s' } })
    cleanup.push(register(orders))
    const client = new EchoClientCtor(meshTarget('payments'), insecure, meshClientOptions(orders, 'payments'))
    cleanup.push(() => client.close())
    const server = createMeshServer(orders, (req, res) => {
      unary(client, { text: 'charge', count: Number(req.headers['x-delay'] ?? 0) }).then(
        (r) => res.end(JSON.stringify(r)),
        (e: grpc.ServiceError) => res.writeHead(502).end(String(e.code)),
      )
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanup.push(() => new Promise((r) => server.close(r)))
    // web: the HTTP caller, with a 2 s timeout for orders.
    const web = await meshFor('web', { orders: { endpoints: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`], timeout: '2s', retries: false } })
    const agent = meshAgent(web)
    cleanup.push(() => agent.close())

    const t0 = Date.now()
    const res = await request('http://orders/charge', { dispatcher: agent })
    expect(await res.body.text()).toContain('payments')
    // web's 2 s, reduced by the time spent before the gRPC hop (grpc-timeout is relative: it drifts later by the transit time).
    expect(seen!.scope).toBeGreaterThan(t0 + 1500)
    expect(seen!.scope).toBeLessThanOrEqual(Date.now() + 2000 + 100)
    expect(seen!.scope).toBe(seen!.grpc)

    const ac = new AbortController()
    const p = request('http://orders/charge', { dispatcher: agent, headers: { 'x-delay': '1500' }, signal: ac.signal }).catch((e: Error) => e)
    await new Promise((r) => setTimeout(r, 200))
    ac.abort()
    await p
    await new Promise((r) => setTimeout(r, 200))
    expect(cancelled).toBe(true)
  })
})
