import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { EchoClientCtor, insecure, startBackend, unary, type Backend, type EchoClient } from './fixtures/echo.js'

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
    const slow = await startBackend('slow', { handler: async (req) => (await new Promise((r) => setTimeout(r, 60)), { from: 'slow', text: req.text }) })
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
