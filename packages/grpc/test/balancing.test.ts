import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { echoDefinition, EchoClientCtor, insecure, startBackend, unary, type Backend, type EchoClient } from './fixtures/echo.js'

let cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function setup(backends: Backend[], services: Record<string, unknown> = {}): Promise<{ mesh: Mesh; client: EchoClient }> {
  const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: backends.map((b) => b.url), ...services } } })
  const unregister = register(mesh)
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  cleanup.push(() => client.close(), unregister, () => mesh.close(), ...backends.map((b) => () => b.close()))
  return { mesh, client }
}

describe('meshlet:/// resolver and LB policy', () => {
  it('resolves endpoints from the mesh destination and spreads calls over them', async () => {
    const a = await startBackend('a')
    const b = await startBackend('b')
    const { mesh, client } = await setup([a, b])
    const seen = new Set<string>()
    for (let i = 0; i < 40; i++) seen.add((await unary(client, { text: 'hi' })).from)
    expect(seen).toEqual(new Set(['a', 'b']))
    // The core balancer saw every call, with its outcome.
    const eps = mesh.inspect().destinations.echo!.endpoints
    expect(eps.reduce((n, e) => n + e.requests, 0)).toBe(40)
    expect(eps.every((e) => e.inflight === 0)).toBe(true)
  })

  it('fails clearly for a name that is not a mesh service', async () => {
    const a = await startBackend('a')
    const { mesh } = await setup([a])
    const other = new EchoClientCtor(meshTarget('nope'), insecure, meshClientOptions(mesh, 'nope'))
    cleanup.push(() => other.close())
    const err = await unary(other, { text: 'x' }, { deadline: Date.now() + 2000 }).catch((e: grpc.ServiceError) => e)
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE)
    expect((err as grpc.ServiceError).details).toMatch(/"nope" is not a service of mesh "web"/)
  })

  it('avoids a slow backend (P2C peak-EWMA)', async () => {
    const slow = await startBackend('slow', { handler: async (req) => (await new Promise((r) => setTimeout(r, 200)), { from: 'slow', text: req.text }) })
    const fast = await startBackend('fast')
    const { client } = await setup([slow, fast])
    const counts: Record<string, number> = { slow: 0, fast: 0 }
    for (let round = 0; round < 25; round++) {
      const replies = await Promise.all(Array.from({ length: 8 }, () => unary(client, { text: 'x' })))
      for (const r of replies) counts[r.from]!++
    }
    expect(counts.fast! + counts.slow!).toBe(200)
    expect(counts.fast! / 200).toBeGreaterThan(0.8)
  })

  it('follows a policy update live (service config regenerated)', async () => {
    const a = await startBackend('a', { handler: () => ({ code: grpc.status.UNAVAILABLE, details: 'down' }) as grpc.StatusObject })
    const { mesh, client } = await setup([a], { retries: { attempts: 2 } })
    await unary(client, { text: 'x' }).catch(() => undefined)
    expect(a.calls).toBe(3) // 1 + 2 retries on UNAVAILABLE, by grpc-js from the generated retryPolicy
    mesh.applyPolicy('echo', [{ retries: false }], 'test')
    await new Promise((r) => setTimeout(r, 50))
    a.calls = 0
    await unary(client, { text: 'x' }).catch(() => undefined)
    expect(a.calls).toBe(1)
  })
})

describe('streams', () => {
  it('a long server stream is no latency sample, and the marker does not reach the server', async () => {
    const a = await startBackend('a')
    const { mesh, client } = await setup([a])
    const seen: string[] = []
    a.server.removeService(echoDefinition)
    a.server.addService(echoDefinition, {
      Echo: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { from: 'a' }),
      Put: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { from: 'a' }),
      Watch: async (call: grpc.ServerWritableStream<{ count: number }, unknown>) => {
        seen.push(...Object.keys(call.metadata.getMap()))
        for (let i = 0; i < 5; i++) {
          call.write({ from: 'a' })
          await new Promise((r) => setTimeout(r, 80))
        }
        call.end()
      },
    })
    const messages = await new Promise<number>((resolve, reject) => {
      let n = 0
      const stream = client.Watch({ text: 'x', count: 5 })
      stream.on('data', () => n++)
      stream.on('error', reject)
      stream.on('end', () => resolve(n))
    })
    expect(messages).toBe(5)
    expect(seen).not.toContain('meshlet-call')
    const ep = mesh.inspect().destinations.echo!.endpoints[0]!
    expect(ep.requests).toBe(1)
    expect(ep.latencyMs).toBeLessThan(100)
  })
})

describe('several meshes in one process', () => {
  it('a client made with meshClientOptions(mesh) resolves through that mesh, not the one registered last', async () => {
    const a = await startBackend('a')
    const b = await startBackend('b')
    const meshA = await createMesh({ service: 'web-a', shutdownSignals: false, services: { echo: { endpoints: [a.url] } } })
    const meshB = await createMesh({ service: 'web-b', shutdownSignals: false, services: { echo: { endpoints: [b.url] } } })
    const offA = register(meshA)
    const offB = register(meshB)
    const clientA = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(meshA, 'echo'))
    const clientB = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(meshB, 'echo'))
    const byAuthority = new EchoClientCtor('meshlet://web-a/echo', insecure)
    cleanup.push(() => a.close(), () => b.close(), () => meshA.close(), () => meshB.close(), offA, offB, () => clientA.close(), () => clientB.close(), () => byAuthority.close())
    expect((await unary(clientA, { text: 'x' })).from).toBe('a')
    expect((await unary(clientB, { text: 'x' })).from).toBe('b')
    expect((await unary(byAuthority, { text: 'x' })).from).toBe('a')
  })
})

describe('ring-hash', () => {
  it('keeps calls with the same key metadata on one backend', async () => {
    const backends = await Promise.all(['a', 'b', 'c'].map((id) => startBackend(id)))
    const { mesh, client } = await setup(backends, { balancer: { type: 'ring-hash', hashHeader: 'x-user' } })
    // Until every subchannel is connected, picks go to the connected ones: wait for all three.
    for (let i = 0; i < 100 && mesh.inspect().destinations.echo!.endpoints.some((e) => e.requests === 0); i++) await unary(client, { text: 'warm' })
    await new Promise((r) => setTimeout(r, 50))
    const owners = new Map<string, Set<string>>()
    for (let round = 0; round < 5; round++) {
      for (let u = 0; u < 30; u++) {
        const md = new grpc.Metadata()
        md.set('x-user', `user-${u}`)
        const from = (await unary(client, { text: 'x' }, {}, md)).from
        owners.set(`user-${u}`, (owners.get(`user-${u}`) ?? new Set()).add(from))
      }
    }
    expect([...owners.values()].every((s) => s.size === 1)).toBe(true)
    expect(new Set([...owners.values()].map((s) => [...s][0])).size).toBeGreaterThan(1)
  })
})
