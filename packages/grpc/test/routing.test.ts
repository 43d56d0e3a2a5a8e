/** Routes for gRPC calls: revision splits, header matches, per-rule timeout and fault injection. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it, vi } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { trackedCalls } from '../src/call-registry.js'
import { EchoClientCtor, insecure, startBackend, unary, type Backend, type EchoClient } from './fixtures/echo.js'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function setup(routes: unknown[]): Promise<{ mesh: Mesh; client: EchoClient; v1: Backend; v2: Backend }> {
  const v1 = await startBackend('v1')
  const v2 = await startBackend('v2')
  cleanup.push(() => v1.server.forceShutdown(), () => v2.server.forceShutdown())
  const mesh = await createMesh({
    service: 'web',
    shutdownSignals: false,
    services: { echo: { endpoints: [{ url: v1.url, revision: 'v1' }, { url: v2.url, revision: 'v2' }], routes } },
  } as never)
  const unregister = register(mesh)
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  cleanup.push(() => mesh.close(), unregister, () => client.close())
  // Both subchannels connected before counting (until then a split falls back to any revision).
  for (let i = 0; i < 10; i++) await unary(client, { text: 'warm' })
  await new Promise((r) => setTimeout(r, 100))
  v1.calls = v2.calls = 0
  return { mesh, client, v1, v2 }
}

/**
 * A client whose calls to `method` go to the v1 backend and are mirrored to the shadow one (outlier
 * ejection off: warm-up calls may fail on the shadow); both subchannels connected before it returns,
 * so that no copy is dropped for want of a connection.
 */
async function mirrored(primary: Backend, shadow: Backend, method: string): Promise<{ mesh: Mesh; client: EchoClient }> {
  cleanup.push(() => primary.server.forceShutdown(), () => shadow.server.forceShutdown())
  const mesh = await createMesh({
    service: 'web',
    shutdownSignals: false,
    services: {
      echo: {
        endpoints: [
          { url: primary.url, revision: 'v1' },
          { url: shadow.url, revision: 'shadow' },
        ],
        routes: [{ match: { path: { exact: `/meshlet.test.Echo/${method}` } }, split: [{ revision: 'v1', weight: 100 }], mirror: { revision: 'shadow', percent: 100 } }],
        outlier: false,
      },
    },
  } as never)
  const unregister = register(mesh)
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  cleanup.push(() => mesh.close(), unregister, () => client.close())
  await vi.waitFor(async () => {
    await unary(client, { text: 'warm' })
    expect(mesh.inspect().destinations.echo!.endpoints.every((e) => e.requests > 0)).toBe(true)
  })
  primary.calls = shadow.calls = 0
  return { mesh, client }
}

describe('routes', () => {
  it('splits 10,000 calls 90/10 by revision', async () => {
    const { client, v1, v2 } = await setup([{ split: [{ revision: 'v1', weight: 90 }, { revision: 'v2', weight: 10 }] }])
    let next = 0
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next++ < 10_000) await unary(client, { text: 'x' })
      }),
    )
    expect(v1.calls + v2.calls).toBe(10_000)
    expect(Math.abs(v2.calls - 1000)).toBeLessThanOrEqual(20)
  })

  it('routes by metadata header, and falls through to the next rule', async () => {
    const { client, v1, v2 } = await setup([
      { match: { headers: { 'x-canary': '1' } }, split: [{ revision: 'v2', weight: 100 }] },
      { split: [{ revision: 'v1', weight: 100 }] },
    ])
    const canary = new grpc.Metadata()
    canary.set('x-canary', '1')
    for (let i = 0; i < 20; i++) expect((await unary(client, { text: 'x' }, {}, canary.clone())).from).toBe('v2')
    for (let i = 0; i < 20; i++) expect((await unary(client, { text: 'x' })).from).toBe('v1')
    expect([v1.calls, v2.calls]).toEqual([20, 20])
  })

  it('applies a rule timeout and injects faults without reaching a backend', async () => {
    const { client, v1, v2 } = await setup([
      { match: { path: { prefix: '/meshlet.test.Echo/Put' } }, timeout: '100ms', split: [{ revision: 'v1', weight: 100 }] },
      { fault: { abort: { status: 503, percent: 100 }, header: 'x-fault' }, split: [{ revision: 'v1', weight: 100 }] },
    ])
    const t0 = Date.now()
    await expect(unary(client, { text: 'x', delayMs: 1000 }, {}, undefined, 'Put')).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect(Date.now() - t0).toBeLessThan(600)
    const md = new grpc.Metadata()
    md.set('x-fault', 'yes')
    const before = v1.calls + v2.calls
    const faults: unknown[] = []
    const onFault = (m: unknown) => faults.push(m)
    subscribe('meshlet:fault:injected', onFault)
    try {
      const err = await unary(client, { text: 'x' }, {}, md).catch((e: grpc.ServiceError) => e)
      expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE })
      expect((err as Error).message).toMatch(/Fault injected/)
    } finally {
      unsubscribe('meshlet:fault:injected', onFault)
    }
    expect(v1.calls + v2.calls).toBe(before)
    expect(faults).toEqual([{ service: 'echo', kind: 'abort', status: 503 }])
  })

  it('mirrors unary calls to a shadow revision without slowing or failing the caller, and never retries a copy', async () => {
    const primary = await startBackend('v1')
    // The shadow is slow and broken (UNAVAILABLE, which grpc-js would retry); the caller must see neither.
    const marks: string[] = []
    const shadow = await startBackend('shadow', {
      handler: async (_req, call) => {
        marks.push(String(call.metadata.get('meshlet-mirror')[0]))
        await new Promise((r) => setTimeout(r, 300))
        return { code: grpc.status.UNAVAILABLE, details: 'shadow is broken', metadata: new grpc.Metadata() }
      },
    })
    const { client } = await mirrored(primary, shadow, 'Put')
    marks.length = 0
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) expect(await unary(client, { text: `order-${i}` }, {}, undefined, 'Put')).toMatchObject({ from: 'v1', text: `order-${i}` })
    expect(performance.now() - t0).toBeLessThan(10 * 300) // no call waited for the shadow
    await vi.waitFor(() => expect(shadow.calls).toBe(10))
    expect(marks).toEqual(Array(10).fill('1'))
    expect(primary.calls).toBe(10)
    // Each copy failed with UNAVAILABLE and was not retried; every copy has ended.
    await vi.waitFor(() => expect(trackedCalls()).toBe(0), { timeout: 2000 })
    expect(shadow.calls).toBe(10)
  })

  it('reads and drops a mirrored server stream, so the copy runs to its end', async () => {
    const primary = await startBackend('v1')
    const shadow = await startBackend('shadow')
    const { client } = await mirrored(primary, shadow, 'Watch')
    // 100 messages of 2 KiB: three times HTTP/2's initial window, which a copy nobody read would never get past.
    const got = await new Promise<number>((resolve, reject) => {
      let n = 0
      const stream = client.Watch({ text: 'x'.repeat(2048), count: 100 })
      stream.on('data', () => n++)
      stream.on('error', reject)
      stream.on('end', () => resolve(n))
    })
    expect(got).toBe(100)
    await vi.waitFor(() => expect(trackedCalls()).toBe(0), { timeout: 5000 })
    expect(shadow.calls).toBe(1)
  })
})
