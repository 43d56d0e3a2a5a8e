/**
 * Server and client duration metrics through a real OpenTelemetry SDK (MeterProvider + a
 * MetricReader, delta temporality so each test sees only its own points): `http.route` is the
 * framework's route template, never the raw path; method and status are present; refusals count
 * in `meshlet.admission.rejected`, not in the duration histogram.
 */
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import express from 'express'
import Fastify from 'fastify'
import { Client } from 'undici'
import type { Attributes } from '@opentelemetry/api'
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics'
import { meshAgent } from '@meshlet/http'
import { meshlet as expressMeshlet } from '@meshlet/http/express'
import { meshlet as fastifyMeshlet } from '@meshlet/http/fastify'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'
import { installDeltaMetrics } from './fixtures/otel.js'

const reader = installDeltaMetrics()

async function collect(name: string): Promise<{ metric: MetricData | undefined; points: DataPoint<unknown>[] }> {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  const found = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name)
  return { metric: found[0], points: found.flatMap((m) => m.dataPoints as DataPoint<unknown>[]) }
}

/** Resolves when `n` more responses of `server` have closed (their metrics are recorded by then). */
function responsesClosed(server: Server, n: number): Promise<void> {
  return new Promise((resolve) => {
    let left = n
    const onRequest = (_req: unknown, res: { once(e: 'close', f: () => void): void }) =>
      res.once('close', () => {
        if (--left === 0) {
          server.off('request', onRequest)
          resolve()
        }
      })
    server.on('request', onRequest)
  })
}

function summary(points: DataPoint<unknown>[]): { attributes: Attributes; count: number }[] {
  return points
    .map((p) => ({ attributes: p.attributes, count: (p.value as Histogram).count }))
    .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes)))
}

const ROUTES = [
  { method: 'GET', path: '/orders/:id', handler: ({ params }: { params: Record<string, string> }) => ({ body: { id: params.id } }) },
  { method: 'POST', path: '/orders/:id', handler: ({ body }: { body: unknown }) => ({ status: 201, body: { created: body } }) },
] as const

describe.each(ADAPTERS)('%s adapter metrics', (adapter: AdapterName) => {
  const t = new Teardown()
  beforeEach(async () => {
    await reader.collect() // start each test from an empty delta
  })
  afterEach(() => t.run())

  /** The adapter under test serving ROUTES, and a mesh agent on the client side whose `orders` is that server. */
  async function serveWithClient() {
    const mesh = await meshFor(t, { service: 'orders' })
    const srv = await serve(adapter, mesh, [...ROUTES])
    t.add(() => srv.close())
    const clientMesh = await meshFor(t, { service: 'web', services: { orders: { endpoints: [srv.origin], retries: false } } })
    const agent = meshAgent(clientMesh)
    t.add(() => agent.close())
    return { srv, agent }
  }

  it('records http.server.request.duration with the route template, method and status; and the client side', async () => {
    const { srv, agent } = await serveWithClient()

    const recorded = responsesClosed(srv.server, 4)
    const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
      const res = await agent.request({
        origin: 'http://orders',
        path,
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      })
      await res.body.dump()
      return res.statusCode
    }
    expect(await call('GET', '/orders/42')).toBe(200)
    expect(await call('GET', '/orders/43')).toBe(200)
    expect(await call('POST', '/orders/7', { qty: 1 })).toBe(201)
    expect(await call('GET', '/nope/1')).toBe(404)
    await recorded

    const server = await collect('http.server.request.duration')
    expect(server.metric?.descriptor.unit).toBe('s')
    expect(summary(server.points)).toEqual([
      { attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/orders/:id' }, count: 2 },
      { attributes: { 'http.request.method': 'GET', 'http.response.status_code': 404 }, count: 1 },
      { attributes: { 'http.request.method': 'POST', 'http.response.status_code': 201, 'http.route': '/orders/:id' }, count: 1 },
    ])
    for (const p of server.points) {
      const h = p.value as Histogram
      expect(h.sum).toBeGreaterThan(0)
      expect(h.sum).toBeLessThan(10)
      // The semconv advisory buckets, in seconds.
      expect(h.buckets.boundaries).toEqual([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
    }
    expect(JSON.stringify(server.points.map((p) => p.attributes))).not.toMatch(/orders\/4|orders\/7|nope/)
  })

  it('records http.client.request.duration for calls through the mesh agent', async () => {
    const { agent } = await serveWithClient()
    for (const path of ['/orders/1', '/orders/2', '/nope/3']) {
      const res = await agent.request({ origin: 'http://orders', path, method: 'GET' })
      await res.body.dump()
    }
    const client = await collect('http.client.request.duration')
    expect(client.metric?.descriptor.unit).toBe('s')
    expect(summary(client.points)).toEqual([
      { attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'server.address': 'orders' }, count: 2 },
      { attributes: { 'http.request.method': 'GET', 'http.response.status_code': 404, 'server.address': 'orders' }, count: 1 },
    ])
  })

  it('counts refusals in meshlet.admission.rejected by reason and leaves them out of the duration histogram', async () => {
    const mesh = await meshFor(t, { service: 'orders' })
    const srv = await serve(adapter, mesh, [...ROUTES])
    t.add(() => srv.close())
    const client = new Client(srv.origin)
    t.add(() => client.destroy())
    const recorded = responsesClosed(srv.server, 4)
    const statuses: number[] = []
    for (const deadline of ['junk', '-1', '1', String(Date.now() + 5000)]) {
      const res = await client.request({ method: 'GET', path: '/orders/9', headers: { 'meshlet-deadline': deadline } })
      await res.body.dump()
      statuses.push(res.statusCode)
    }
    expect(statuses).toEqual([400, 400, 504, 200])
    await recorded

    const { resourceMetrics } = await reader.collect()
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
    const rejected = all.find((m) => m.descriptor.name === 'meshlet.admission.rejected')
    const byReason = Object.fromEntries((rejected?.dataPoints ?? []).map((p) => [p.attributes['meshlet.rejection.reason'], p.value]))
    expect(byReason).toEqual({ bad_header: 2, deadline: 1 })
    const durations = all.find((m) => m.descriptor.name === 'http.server.request.duration')
    expect(summary((durations?.dataPoints ?? []) as DataPoint<unknown>[])).toEqual([
      { attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/orders/:id' }, count: 1 },
    ])
  })
})

describe('route templates under a mount point', () => {
  const t = new Teardown()
  beforeEach(async () => {
    await reader.collect()
  })
  afterEach(() => t.run())

  async function getTwice(origin: string, paths: string[]): Promise<void> {
    const client = new Client(origin)
    t.add(() => client.destroy())
    for (const path of paths) {
      const res = await client.request({ method: 'GET', path })
      await res.body.dump()
      expect(res.statusCode).toBe(200)
    }
  }

  it('Express: a router mounted at /v1 records /v1/orders/:id', async () => {
    const mesh = await meshFor(t, { service: 'orders' })
    const app = express()
    app.use(expressMeshlet(mesh))
    const router = express.Router()
    router.get('/orders/:id', (req, res) => void res.json({ id: req.params.id }))
    app.use('/v1', router)
    const server = createServer(app).listen(0, '127.0.0.1')
    t.add(() => new Promise((r) => server.close(r)))
    await once(server, 'listening')
    const recorded = responsesClosed(server, 2)
    await getTwice(`http://127.0.0.1:${(server.address() as { port: number }).port}`, ['/v1/orders/1', '/v1/orders/2'])
    await recorded
    const { points } = await collect('http.server.request.duration')
    expect(summary(points)).toEqual([{ attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/v1/orders/:id' }, count: 2 }])
  })

  it('Fastify: routes registered with prefix /v1 record /v1/orders/:id', async () => {
    const mesh = await meshFor(t, { service: 'orders' })
    const app = Fastify()
    await app.register(fastifyMeshlet, { mesh })
    await app.register(
      async (scoped) => {
        scoped.get('/orders/:id', async (request) => ({ id: (request.params as { id: string }).id }))
      },
      { prefix: '/v1' },
    )
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.add(() => app.close())
    const recorded = responsesClosed(app.server, 2)
    await getTwice(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`, ['/v1/orders/1', '/v1/orders/2'])
    await recorded
    const { points } = await collect('http.server.request.duration')
    expect(summary(points)).toEqual([{ attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/v1/orders/:id' }, count: 2 }])
  })
})
