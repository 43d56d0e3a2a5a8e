/**
 * Live policy updates (mesh.applyPolicy): new calls follow the new policy at once, in-flight and
 * endpoint state survive, and an invalid update is refused while the previous policy stays.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, ChannelRecorder, call, startBackend, startMesh, type BackendHandler } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** Fails every other request with a 503, starting with the first. */
function flaky(): BackendHandler {
  let n = 0
  return (req, res) => {
    req.resume()
    res.writeHead(n++ % 2 === 0 ? 503 : 200).end('x')
  }
}

describe('live policy updates', () => {
  it('turning retries on applies to the next call without a restart', async () => {
    const backend = await startBackend(cleanup, flaky())
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints: [backend.url], retries: false, breaker: false, outlier: false } })

    expect((await call(agent, 'http://payments/a')).status).toBe(503)
    expect((await call(agent, 'http://payments/b')).status).toBe(200)

    const before = mesh.inspect().configVersion
    mesh.applyPolicy('payments', { retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } } })
    expect(mesh.inspect().configVersion).toBe(before + 1)
    expect(mesh.inspect().destinations.payments!.policy.retries).toMatchObject({ attempts: 2 })

    // The 503 of the next call is now retried and the caller sees the 200.
    expect((await call(agent, 'http://payments/c')).status).toBe(200)
    expect(backend.seen.map((r) => r.path)).toEqual(['/a', '/b', '/c', '/c'])
  })

  it('keeps endpoint state across an update and switches the balancer', async () => {
    const a = await startBackend(cleanup, (req, res) => res.end('a'))
    const b = await startBackend(cleanup, (req, res) => res.end('b'))
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints: [a.url, b.url] } })
    for (let i = 0; i < 10; i++) await call(agent, 'http://payments/x')
    const requestsBefore = mesh.inspect().destinations.payments!.endpoints.reduce((n, e) => n + e.requests, 0)
    expect(requestsBefore).toBe(10)

    mesh.applyPolicy('payments', { balancer: 'round-robin' })
    const seenBefore = a.seen.length + b.seen.length
    for (let i = 0; i < 20; i++) await call(agent, 'http://payments/y')
    const snap = mesh.inspect().destinations.payments!
    expect(snap.policy.balancer.type).toBe('round-robin')
    expect(snap.endpoints.reduce((n, e) => n + e.requests, 0)).toBe(30)
    // Round-robin alternates exactly.
    const after = [...a.seen, ...b.seen].length - seenBefore
    expect(after).toBe(20)
    expect(Math.abs(a.seen.filter((r) => r.path === '/y').length - b.seen.filter((r) => r.path === '/y').length)).toBe(0)
  })

  it('refuses an invalid update with field-level errors, keeps the old policy, and reports it', async () => {
    const backend = await startBackend(cleanup, (req, res) => res.end('ok'))
    const { agent, mesh } = await startMesh(cleanup, { payments: { endpoints: [backend.url], timeout: 2000 } })
    const rejected = new ChannelRecorder<{ service: string; issues: { path: string }[] }>(cleanup, 'meshlet:config:rejected')
    const version = mesh.inspect().configVersion

    let error: unknown
    try {
      mesh.applyPolicy('payments', { timeout: 'banana', retries: { attempts: 99 } }, 'ServicePolicy default/payments')
    } catch (e) {
      error = e
    }
    expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
    expect((error as Error).message).toContain('ServicePolicy default/payments')
    expect((error as { issues: { path: string }[] }).issues.map((i) => i.path).sort()).toEqual(['retries.attempts', 'timeout'])

    const snap = mesh.inspect()
    expect(snap.configVersion).toBe(version)
    expect(snap.destinations.payments!.policy.timeout).toBe(2000)
    expect(snap.lastRejectedConfig).toMatchObject({ service: 'payments', source: 'ServicePolicy default/payments' })
    expect((await rejected.waitFor()).issues.map((i) => i.path).sort()).toEqual(['retries.attempts', 'timeout'])
    expect((await call(agent, 'http://payments/still-works')).status).toBe(200)
  })

  it('names the known destinations when asked to update an unknown one', () => {
    return startMesh(cleanup, { payments: { endpoints: ['http://127.0.0.1:9'] } }).then(({ mesh }) => {
      expect(() => mesh.applyPolicy('nope', {})).toThrow(/no destination "nope".*known: payments/)
    })
  })
})
