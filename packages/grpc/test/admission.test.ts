/** Admission control on a meshlet gRPC server: concurrency limit and queue, rate limit, and retries elsewhere. */
import { afterEach, describe, expect, it, vi } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, REJECTED_HEADER, type Mesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { EchoClientCtor, insecure, startBackend, unary, type Backend } from './fixtures/echo.js'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function limitedBackend(id: string, admission: Record<string, unknown>, hold = 200): Promise<{ mesh: Mesh; b: Backend }> {
  const mesh = await createMesh({ service: 'echo', shutdownSignals: false, admission } as never)
  const b = await startBackend(id, { mesh, handler: async (req) => (await new Promise((r) => setTimeout(r, hold)), { from: id, text: req.text }) })
  cleanup.push(() => mesh.close(), () => b.server.forceShutdown())
  return { mesh, b }
}

function statusOf(client: ReturnType<typeof rawClient>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    const call = (client.Echo as unknown as (...a: unknown[]) => grpc.ClientUnaryCall)({ text: 'x' }, () => undefined)
    call.on('status', resolve)
  })
}

function rawClient(port: number) {
  const c = new EchoClientCtor(`127.0.0.1:${port}`, insecure)
  cleanup.push(() => c.close())
  return c
}

describe('admission', () => {
  it('queues calls over the concurrency limit and runs them in turn', async () => {
    const { b } = await limitedBackend('a', { concurrency: { limit: 1, queue: 5 } }, 50)
    const client = rawClient(b.port)
    const t0 = Date.now()
    const replies = await Promise.all(Array.from({ length: 4 }, () => unary(client, { text: 'x' })))
    expect(replies.every((r) => r.from === 'a')).toBe(true)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190)
  })

  it('refuses beyond the queue as not processed, and the client retries on another backend, even a non-idempotent method', async () => {
    const { mesh: aMesh, b: a } = await limitedBackend('a', { concurrency: { limit: 1, queue: 0 } })
    const b = await startBackend('b', { handler: async (req) => (await new Promise((r) => setTimeout(r, 20)), { from: 'b', text: req.text }) })
    cleanup.push(() => b.server.forceShutdown())
    const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: [a.url, b.url], retries: { attempts: 4, budget: { minPerSecond: 1000 } } } } })
    const unregister = register(mesh)
    const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
    cleanup.push(() => mesh.close(), unregister, () => client.close())
    const replies = await Promise.all(Array.from({ length: 20 }, () => unary(client, { text: 'x' }, {}, undefined, 'Put')))
    expect(replies).toHaveLength(20)
    expect(aMesh.inspect().inbound.admission.rejected.concurrency ?? 0).toBeGreaterThan(0)
  })

  it("feeds the adaptive limit a queued call's run time, not its wait in the queue too", async () => {
    const mesh = await createMesh({ service: 'echo', shutdownSignals: false, admission: { concurrency: { limit: 1, queue: 4, queueTimeout: '30s' }, adaptive: { minLimit: 1, maxLimit: 1 } } })
    let firstStarted!: () => void
    const started = new Promise<void>((r) => (firstStarted = r))
    let releaseFirst!: () => void
    const held = new Promise<void>((r) => (releaseFirst = r))
    const b = await startBackend('a', { mesh, handler: async (req) => (req.text === 'first' && (firstStarted(), await held), { from: 'a' }) })
    cleanup.push(() => mesh.close(), () => b.server.forceShutdown())
    const release = vi.spyOn(mesh.inbound.admission!, 'release')
    const client = rawClient(b.port)
    const first = unary(client, { text: 'first' })
    await started
    const second = unary(client, { text: 'second' })
    for (let i = 0; i < 1000 && mesh.inspect().inbound.admission.queued === 0; i++) await new Promise((r) => setImmediate(r))
    expect(mesh.inspect().inbound.admission.queued).toBe(1)
    // Ten seconds pass by the monotonic clock while the second call waits for the first.
    const realNow = performance.now.bind(performance)
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => realNow() + 10_000)
    try {
      releaseFirst()
      await Promise.all([first, second])
    } finally {
      clock.mockRestore()
    }
    const [firstMs, secondMs] = release.mock.calls.map(([ms]) => ms!)
    expect(firstMs).toBeGreaterThanOrEqual(10_000)
    expect(secondMs).toBeLessThan(1000)
  })

  it('answers a rate-limited call UNAVAILABLE with the not-processed marker and grpc-retry-pushback-ms', async () => {
    const { b } = await limitedBackend('a', { rateLimit: { rps: 1, burst: 1 } }, 0)
    const client = rawClient(b.port)
    expect((await statusOf(client)).code).toBe(grpc.status.OK)
    const refused = await statusOf(client)
    expect(refused.code).toBe(grpc.status.UNAVAILABLE)
    expect(refused.metadata.get(REJECTED_HEADER)[0]).toBe('1')
    expect(Number(refused.metadata.get('grpc-retry-pushback-ms')[0])).toBeGreaterThan(0)
    expect(refused.details).toMatch(/rate limit/)
  })
})
