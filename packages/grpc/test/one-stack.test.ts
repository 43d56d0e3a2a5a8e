/**
 * One client stack, two transports: each behaviour here runs against HTTP (meshAgent over undici,
 * node:http backends) and gRPC (meshClientOptions over grpc-js, grpc-js backends) with the same
 * policy, and must come out the same. Before the one-stack change these drifted: the gRPC retry
 * budget was grpc-js's retryThrottling, its breaker counted calls, a route's `retries.attempts` did
 * nothing for it, and mirroring was HTTP-only.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { request } from 'undici'
import { createMesh, isMeshletError, ErrorCodes, type Filter, type Mesh, type MeshOptions } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { EchoClientCtor, insecure, startBackend as startGrpcBackend, unary } from './fixtures/echo.js'

/** How a backend answers: served, a retryable failure (HTTP 503 / gRPC UNAVAILABLE), or never. */
type Behaviour = 'ok' | 'fail' | 'hang'

interface Backend {
  readonly url: string
  /** Requests or calls that reached it. */
  calls: number
  /** The `meshlet-mirror` mark of each, '' when absent. */
  readonly marks: string[]
}

interface Outcome {
  ok: boolean
  from?: string
  /** The meshlet code of a failure the mesh raised itself, when it did. */
  code?: string
}

interface Transport {
  readonly name: string
  backend(id: string, behave: () => Behaviour): Promise<Backend>
  /** One idempotent call (GET; a gRPC method listed as idempotent) through the mesh. */
  call(mesh: Mesh): Promise<Outcome>
}

let cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

const http: Transport = {
  name: 'http',
  async backend(id, behave) {
    const b: Backend = { url: '', calls: 0, marks: [] }
    const server: Server = createServer((req, res) => {
      b.calls++
      b.marks.push(String(req.headers['meshlet-mirror'] ?? ''))
      const what = behave()
      if (what === 'hang') return
      res.writeHead(what === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ from: id }))
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanup.push(() => (server.closeAllConnections(), new Promise((r) => server.close(r))))
    return Object.assign(b, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  },
  async call(mesh) {
    let agent = agents.get(mesh)
    if (agent === undefined) {
      agents.set(mesh, (agent = meshAgent(mesh)))
      const a = agent
      cleanup.push(() => a.close())
    }
    try {
      const res = await request('http://echo/x', { dispatcher: agent })
      const body = (await res.body.json()) as { from: string }
      return { ok: res.statusCode === 200, from: body.from }
    } catch (err) {
      return { ok: false, code: isMeshletError(err) ? err.code : String((err as { code?: string }).code) }
    }
  },
}
const agents = new WeakMap<Mesh, ReturnType<typeof meshAgent>>()

const clients = new WeakMap<Mesh, InstanceType<typeof EchoClientCtor>>()
const grpcTransport: Transport = {
  name: 'grpc',
  async backend(id, behave) {
    const b: Backend = { url: '', calls: 0, marks: [] }
    const real = await startGrpcBackend(id, {
      handler: (_req, call) => {
        b.calls++
        b.marks.push(String(call.metadata.get('meshlet-mirror')[0] ?? ''))
        const what = behave()
        if (what === 'hang') return new Promise<never>(() => {})
        return what === 'ok' ? { from: id } : { code: grpc.status.UNAVAILABLE, details: 'failing', metadata: new grpc.Metadata() }
      },
    })
    cleanup.push(() => real.server.forceShutdown())
    return Object.assign(b, { url: real.url })
  },
  async call(mesh) {
    let client = clients.get(mesh)
    if (client === undefined) {
      const unregister = register(mesh, { idempotent: ['meshlet.test.Echo'] })
      clients.set(mesh, (client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))))
      const c = client
      cleanup.push(unregister, () => c.close())
    }
    try {
      return { ok: true, from: (await unary(client, { text: 'x' }, {}, undefined, 'Put')).from }
    } catch (err) {
      const details = String((err as grpc.ServiceError).details ?? '')
      const code = /budget is spent/.test(details) ? ErrorCodes.BUDGET_EXHAUSTED : /breaker .* is open/i.test(details) ? ErrorCodes.BREAKER_OPEN : /deadline/i.test(details) ? ErrorCodes.DEADLINE : undefined
      return { ok: false, ...(code !== undefined ? { code } : {}) }
    }
  },
}

async function meshFor(backends: Backend[], service: Record<string, unknown>): Promise<Mesh> {
  const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: backends.map((b) => b.url), ...service } } } as MeshOptions)
  cleanup.push(() => mesh.close())
  return mesh
}

const FAST = { base: '1ms', max: '2ms' }

describe.each([http, grpcTransport])('one client stack over $name', (t) => {
  it('one retry budget: with every endpoint failing, retries stay within 20 % of calls + 10/s over the 10 s window', async () => {
    const a = await t.backend('a', () => 'fail')
    const b = await t.backend('b', () => 'fail')
    const mesh = await meshFor([a, b], { breaker: false, outlier: false, retries: { attempts: 2, backoff: FAST, budget: { percent: 20, minPerSecond: 10, ttl: '10s' } } })
    const calls = 150
    const start = performance.now()
    for (let i = 0; i < calls; i++) expect((await t.call(mesh)).ok).toBe(false)
    const seconds = Math.ceil((performance.now() - start) / 1000)
    const retries = a.calls + b.calls - calls
    // Unbudgeted, each call would be retried twice (300 retries). The budget (Finagle's) allows
    // 20 % of the calls (30) plus its reserve at minPerSecond: two seconds' worth (20) at once,
    // 10 more each further second the calls took.
    expect(retries).toBeGreaterThanOrEqual(30 + 20)
    expect(retries).toBeLessThanOrEqual(30 + 20 + 10 * seconds)
  })

  it('the breaker counts attempts: 3 attempts per failed call open it after ceil(volume / 3) calls', async () => {
    const a = await t.backend('a', () => 'fail')
    const mesh = await meshFor([a], { outlier: false, retries: { attempts: 2, backoff: FAST, budget: { percent: 100, minPerSecond: 1000 } }, breaker: { volumeThreshold: 6, errorThreshold: 50, resetTimeout: '10s' } })
    await t.call(mesh)
    await t.call(mesh)
    expect(a.calls).toBe(6)
    expect(mesh.inspect().destinations.echo!.breaker).toMatchObject({ state: 'open', fires: 6, failures: 6 })
    const third = await t.call(mesh)
    expect(third.ok).toBe(false)
    expect(a.calls).toBe(6) // failed fast, without reaching the backend
  })

  it('a route rule\'s retries.attempts overrides the destination\'s', async () => {
    const a = await t.backend('a', () => 'fail')
    const mesh = await meshFor([a], { breaker: false, outlier: false, retries: { attempts: 2, backoff: FAST }, routes: [{ retries: { attempts: 0 } }] })
    expect((await t.call(mesh)).ok).toBe(false)
    expect(a.calls).toBe(1)
    mesh.applyRoutes('echo', [{ service: 'echo', rules: [{ retries: { attempts: 1 } }] }])
    await t.call(mesh)
    expect(a.calls).toBe(3)
  })

  it('a per-try timeout moves an idempotent call off a hanging endpoint', async () => {
    const hang = await t.backend('hang', () => 'hang')
    const ok = await t.backend('ok', () => 'ok')
    const mesh = await meshFor([hang, ok], { balancer: 'round-robin', breaker: false, outlier: false, retries: { attempts: 2, perTryTimeout: '100ms', backoff: FAST } })
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now()
      expect(await t.call(mesh)).toMatchObject({ ok: true, from: 'ok' })
      expect(performance.now() - t0).toBeLessThan(1000)
    }
    expect(hang.calls).toBeGreaterThan(0)
  })

  it('a retry goes to an endpoint the call has not tried', async () => {
    const bad = await t.backend('bad', () => 'fail')
    const good = await t.backend('good', () => 'ok')
    const mesh = await meshFor([bad, good], { balancer: 'round-robin', breaker: false, outlier: false, retries: { attempts: 1, backoff: FAST } })
    for (let i = 0; i < 10; i++) expect(await t.call(mesh)).toMatchObject({ ok: true, from: 'good' })
    expect(bad.calls).toBeGreaterThan(0)
  })

  it('mirrors a call to a shadow revision, marked, once per call', async () => {
    const primary = await t.backend('v1', () => 'ok')
    const shadow = await t.backend('shadow', () => 'fail')
    const mesh = await createMesh({
      service: 'web',
      shutdownSignals: false,
      services: { echo: { endpoints: [{ url: primary.url, revision: 'v1' }, { url: shadow.url, revision: 'v2' }], retries: { attempts: 2, backoff: FAST }, routes: [{ split: [{ revision: 'v1', weight: 100 }], mirror: { revision: 'v2', percent: 100 } }] } },
    } as MeshOptions)
    cleanup.push(() => mesh.close())
    for (let i = 0; i < 5; i++) expect(await t.call(mesh)).toMatchObject({ ok: true, from: 'v1' })
    await vi.waitFor(() => expect(shadow.calls).toBe(5)) // a failing copy is never retried
    expect(shadow.marks).toEqual(Array(5).fill('1'))
    expect(primary.marks).toEqual(Array(5).fill(''))
  })

  it('a role inserted by name runs for the transport\'s calls, once per attempt below retry', async () => {
    const a = await t.backend('a', () => 'fail')
    const mesh = await meshFor([a], { breaker: false, outlier: false, retries: { attempts: 2, backoff: FAST, budget: { percent: 100, minPerSecond: 1000 } } })
    const seen: number[] = []
    const counting: Filter<unknown, unknown> = (req, ctx, next) => {
      seen.push(ctx.attempt)
      return next(req, ctx)
    }
    mesh.clientStack.insertAfter('retry', { role: 'count-attempts', make: () => counting })
    await t.call(mesh)
    expect(seen).toEqual([1, 2, 3])
    mesh.clientStack.remove('count-attempts')
    await t.call(mesh)
    expect(seen).toHaveLength(3)
  })
})
