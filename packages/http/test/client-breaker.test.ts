/**
 * The per-destination circuit breaker from the caller's side: it opens on failures, then fails
 * fast without touching the network, half-opens after its reset timeout, and closes again once a
 * probe succeeds.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, ChannelRecorder, call, reply, startBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

describe('client circuit breaker', () => {
  it('opens when every endpoint fails, fails fast without reaching the server, half-opens, and closes after a good probe', async () => {
    const a = await startBackend(cleanup, reply(500, {}, 'down'))
    const b = await startBackend(cleanup, reply(500, {}, 'down'))
    const states = new ChannelRecorder<{ service: string; state: string }>(cleanup, 'meshlet:breaker:state')
    const resetTimeout = 800
    const { agent, mesh } = await startMesh(cleanup, {
      payments: {
        endpoints: [a.url, b.url],
        retries: false,
        outlier: false,
        breaker: { errorThreshold: 50, volumeThreshold: 5, window: 10_000, resetTimeout },
      },
    })
    const served = () => a.seen.length + b.seen.length

    // Failing calls return the 500 to the caller until the breaker has seen enough of them.
    const opened = states.waitFor((m) => m.state === 'open')
    let calls = 0
    while (!states.messages.some((m) => m.state === 'open') && calls < 20) {
      const r = await call(agent, 'http://payments/charge')
      expect(r.status).toBe(500)
      calls++
    }
    const openEvent = await opened
    expect(openEvent).toEqual({ service: 'payments', state: 'open' })
    const openedAt = states.timeOf(openEvent)
    expect(calls).toBe(5)
    expect(mesh.inspect().destinations.payments!.breaker!.state).toBe('open')

    // Open: calls fail fast with BREAKER_OPEN and nothing reaches either server.
    const before = { served: served(), connections: a.connections + b.connections }
    for (let i = 0; i < 10; i++) {
      const err = await call(agent, 'http://payments/charge').then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isMeshletError(err, ErrorCodes.BREAKER_OPEN), String(err)).toBe(true)
    }
    expect(served()).toBe(before.served)
    expect(a.connections + b.connections).toBe(before.connections)

    // The backends recover; after resetTimeout the breaker half-opens and lets one probe through.
    a.handler = reply(200, {}, 'up')
    b.handler = reply(200, {}, 'up')
    const halfOpen = await states.waitFor((m) => m.state === 'half-open')
    expect(states.timeOf(halfOpen) - openedAt).toBeGreaterThanOrEqual(resetTimeout - 50) // opossum arms its timer before the open event is published
    expect(mesh.inspect().destinations.payments!.breaker!.state).toBe('half-open')
    const closed = states.waitFor((m) => m.state === 'closed')
    const probe = await call(agent, 'http://payments/charge')
    expect(probe).toMatchObject({ status: 200, body: 'up' })
    expect(served()).toBe(before.served + 1)
    await closed
    expect(mesh.inspect().destinations.payments!.breaker!.state).toBe('closed')
    expect(states.messages.map((m) => m.state)).toEqual(['open', 'half-open', 'closed'])

    // Closed again: calls flow normally.
    for (let i = 0; i < 5; i++) expect((await call(agent, 'http://payments/charge')).status).toBe(200)
    expect(served()).toBe(before.served + 6)
  })

  it('a failed half-open probe opens the breaker again', async () => {
    const a = await startBackend(cleanup, reply(503, {}, 'down'))
    const states = new ChannelRecorder<{ service: string; state: string }>(cleanup, 'meshlet:breaker:state')
    const { agent } = await startMesh(cleanup, {
      payments: { endpoints: [a.url], retries: false, outlier: false, breaker: { errorThreshold: 50, volumeThreshold: 3, window: 10_000, resetTimeout: 200 } },
    })
    for (let i = 0; i < 3; i++) expect((await call(agent, 'http://payments/x')).status).toBe(503)
    await states.waitFor((m) => m.state === 'open')
    await states.waitFor((m) => m.state === 'half-open')
    const seen = a.seen.length
    expect((await call(agent, 'http://payments/x')).status).toBe(503)
    expect(a.seen.length).toBe(seen + 1)
    await states.waitFor((m) => m.state === 'open' && states.messages.indexOf(m) > 1)
    expect(states.messages.map((m) => m.state)).toEqual(['open', 'half-open', 'open'])
    const err = await call(agent, 'http://payments/x').catch((e: unknown) => e)
    expect(isMeshletError(err, ErrorCodes.BREAKER_OPEN)).toBe(true)
    expect(a.seen.length).toBe(seen + 1)
  })

  it('refusals before processing (meshlet-rejected) never open it: two of three instances shedding, every call served by the third', async () => {
    const shedding = reply(503, { 'meshlet-rejected': '1' }, 'busy')
    const r1 = await startBackend(cleanup, shedding)
    const r2 = await startBackend(cleanup, shedding)
    const ok = await startBackend(cleanup, reply(200, {}, 'ok'))
    const { agent, mesh } = await startMesh(cleanup, {
      orders: { endpoints: [r1.url, r2.url, ok.url], balancer: 'round-robin', outlier: false, retries: { attempts: 2, budget: { minPerSecond: 1000 } }, breaker: { errorThreshold: 50, volumeThreshold: 5 } },
    })
    for (let i = 0; i < 60; i++) expect(await call(agent, 'http://orders/x', { method: 'POST' })).toMatchObject({ status: 200, body: 'ok' })
    expect(r1.seen.length + r2.seen.length).toBeGreaterThan(30)
    expect(mesh.inspect().destinations.orders!.breaker).toMatchObject({ state: 'closed', failures: 0 })
  })
})
