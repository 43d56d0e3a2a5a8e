/**
 * Outlier ejection from the caller's side: a backend SIGKILLed under load costs no failed GET and
 * ends up ejected; a backend answering 500 is ejected after consecutive failures and gets traffic
 * again once its ejection time is over.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, ChannelRecorder, call, endpointOf, reply, runLoad, spawnBackend, startBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface EjectionEvent {
  service: string
  endpoint: string
  durationMs: number
  ejections: number
  consecutiveFailures: number
}

describe('client outlier ejection', () => {
  it('a backend SIGKILLed under concurrent GET load causes no failed call and is ejected', async () => {
    const backends = await Promise.all([0, 1, 2].map((i) => spawnBackend(cleanup, [`--name=b${i}`])))
    const victim = backends[1]!
    const ejected = new ChannelRecorder<EjectionEvent>(cleanup, 'meshlet:endpoint:ejected')
    const retries = new ChannelRecorder<{ previousEndpoint?: string }>(cleanup, 'meshlet:retry')
    const { agent, mesh } = await startMesh(cleanup, {
      payments: {
        endpoints: backends.map((b) => b.url),
        outlier: { consecutiveFailures: 2, baseEjectionTime: 30_000, interval: 10_000 },
      },
    })

    const total = 1500
    const killAfter = 500
    let answered = 0
    let killedAt = -1
    const byBackend = new Map<string, number>()
    const results = await runLoad(total, 16, async () => {
      const r = await call(agent, 'http://payments/item')
      if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`)
      byBackend.set(r.body, (byBackend.get(r.body) ?? 0) + 1)
      if (++answered === killAfter) {
        killedAt = answered
        victim.child.kill('SIGKILL')
      }
      return r.body
    })

    const failures = results.filter((r) => r.status === 'rejected')
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([])
    expect(killedAt).toBe(killAfter)
    await victim.exited
    // The victim served its share before the kill, and nothing after it.
    expect(byBackend.get('b1')).toBeGreaterThan(0)
    const late = results.slice(killAfter + 16).filter((r) => r.status === 'fulfilled' && r.value === 'b1')
    expect(late).toEqual([])
    const event = await ejected.waitFor((m) => m.endpoint === victim.url)
    expect(event.service).toBe('payments')
    expect(endpointOf(mesh, 'payments', victim.url).ejected).toBe(true)
    // Calls that hit the dead backend were saved by retries elsewhere, not by luck.
    const victimFailures = endpointOf(mesh, 'payments', victim.url).failures
    expect(victimFailures).toBeGreaterThanOrEqual(2)
    expect(retries.messages.filter((m) => m.previousEndpoint === victim.url).length).toBe(victimFailures)
    // The survivors were never ejected.
    for (const b of backends) if (b !== victim) expect(endpointOf(mesh, 'payments', b.url).ejected).toBe(false)
  })

  it('a backend answering 500 is ejected after consecutive failures and gets traffic again after its ejection time', async () => {
    const healthy1 = await startBackend(cleanup, reply(200))
    const healthy2 = await startBackend(cleanup, reply(200))
    const sick = await startBackend(cleanup, reply(500, {}, 'broken'))
    const ejected = new ChannelRecorder<EjectionEvent>(cleanup, 'meshlet:endpoint:ejected')
    const restored = new ChannelRecorder<{ service: string; endpoint: string }>(cleanup, 'meshlet:endpoint:restored')
    const { agent, mesh } = await startMesh(cleanup, {
      payments: {
        endpoints: [healthy1.url, healthy2.url, sick.url],
        // Round-robin so the sick endpoint keeps being picked; peak-EWMA would already steer around it.
        balancer: 'round-robin',
        retries: false,
        breaker: false,
        outlier: { consecutiveFailures: 3, baseEjectionTime: 300, maxEjectionTime: 10_000, interval: 60_000 },
      },
    })

    // Sequential calls until the ejection (the sick one is every third pick: ~9 calls).
    const wasEjected = ejected.waitFor((m) => m.endpoint === sick.url)
    let calls = 0
    while (ejected.messages.length === 0 && calls < 30) {
      await call(agent, 'http://payments/x')
      calls++
    }
    const event = await wasEjected
    const ejectedAt = ejected.timeOf(event)
    expect(event).toMatchObject({ service: 'payments', consecutiveFailures: 3, durationMs: 300, ejections: 1 })
    expect(sick.seen.length).toBe(3)
    expect(endpointOf(mesh, 'payments', sick.url)).toMatchObject({ ejected: true, failures: 3 })

    // While ejected it gets nothing, and every call succeeds.
    const during = await runLoad(20, 1, () => call(agent, 'http://payments/x'))
    expect(during.every((r) => r.status === 'fulfilled' && r.value.status === 200)).toBe(true)
    expect(sick.seen.length).toBe(3)

    // It recovers meanwhile; after its ejection time it is restored and picked again.
    sick.handler = reply(200, {}, 'recovered')
    const back = await restored.waitFor((m) => m.endpoint === sick.url)
    expect(back.service).toBe('payments')
    expect(restored.timeOf(back) - ejectedAt).toBeGreaterThanOrEqual(295)
    expect(endpointOf(mesh, 'payments', sick.url).ejected).toBe(false)
    const after = await runLoad(30, 1, () => call(agent, 'http://payments/x'))
    const bodies = after.map((r) => (r.status === 'fulfilled' ? `${r.value.status} ${r.value.body}` : String(r.reason)))
    expect(bodies.filter((b) => b === '200 recovered').length).toBeGreaterThanOrEqual(9)
    expect(bodies.every((b) => b.startsWith('200 '))).toBe(true)
    expect(sick.seen.length).toBeGreaterThanOrEqual(3 + 9)
  })
})
