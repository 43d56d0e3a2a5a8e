/**
 * Core's ControlSync and InstanceLease against a real control endpoint on loopback: the first
 * state, live changes, only real changes told, reconnect and resync, the disk snapshot (and its
 * age on an injected clock), and the lease's register / heartbeat / re-register / deregister.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ErrorCodes, isMeshletError, type EndpointAddress } from '@meshlet/core'
// The units under test, and the client they take, from core's sources (they are not exported).
import { ControlClient } from '../../core/src/control/control-client.js'
import { ControlSync, snapshotFileFor } from '../../core/src/control/control-sync.js'
import { InstanceLease } from '../../core/src/control/instance-lease.js'
import { ADMIN, JOIN, policy, removeTempDirs, restartBehindHistory, startTestControl, tempDir } from './control-harness.js'

const closers: (() => unknown)[] = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  await removeTempDirs()
})

type Call = { kind: 'endpoints'; service: string; endpoints: EndpointAddress[] } | { kind: 'policy' | 'routes'; service: string; specs: Record<string, unknown>[]; source: string }

/** A ControlSync whose handler calls are recorded; `until` resolves once a predicate over them holds. */
function sync(url: string, options: Partial<ConstructorParameters<typeof ControlSync>[3]> = {}, namespace = 'default') {
  const calls: Call[] = []
  const waiters: { test: () => boolean; resolve: () => void }[] = []
  const record = (c: Call) => {
    calls.push(c)
    for (const w of waiters.splice(0)) (w.test() ? w.resolve : () => waiters.push(w))()
  }
  const s = new ControlSync(
    new ControlClient({ url, token: JOIN }),
    namespace,
    {
      endpoints: (service, endpoints) => record({ kind: 'endpoints', service, endpoints }),
      policy: (service, specs, source) => record({ kind: 'policy', service, specs, source }),
      routes: (service, specs, source) => record({ kind: 'routes', service, specs, source }),
    },
    { snapshotMaxAge: 3_600_000, ...options },
  )
  closers.push(() => s.close())
  const until = (test: () => boolean): Promise<void> => (test() ? Promise.resolve() : new Promise((resolve) => waiters.push({ test, resolve })))
  return { s, calls, until }
}

const urlsOf = (calls: Call[], service: string) => {
  const last = calls.filter((c): c is Extract<Call, { kind: 'endpoints' }> => c.kind === 'endpoints' && c.service === service).at(-1)
  return last?.endpoints.map((e) => e.url).sort()
}

async function register(url: string, service: string, port: number, extra: Record<string, unknown> = {}) {
  return new ControlClient({ url, token: JOIN }).register({ service, namespace: 'default', port, address: '127.0.0.1', protocols: ['http'], ttl: 60_000, ...extra } as never)
}

describe('ControlSync', () => {
  it('starts from the endpoint\'s full state and tells each service its endpoints and policies once', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await admin.put(policy('payments', { timeout: '2s' }) as never)
    await register(control.url, 'payments', 4001, { zone: 'z1', revision: 'v1' })
    await register(control.url, 'payments', 4002)
    const { s, calls } = sync(control.url)

    expect(await s.start()).toBe('control')
    expect(s.status()).toMatchObject({ source: 'control', connected: true, resyncs: 0, lastError: undefined })
    expect(s.knows('payments')).toBe(true)
    expect(s.knows('stock')).toBe(false)
    expect(s.endpointsOf('payments').map((e) => e.url).sort()).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:4002'])
    expect(s.endpointsOf('payments').find((e) => e.port === 4001)).toMatchObject({ zone: 'z1', revision: 'v1', host: '127.0.0.1', protocol: 'http' })
    expect(s.policyOf('payments')).toEqual({ specs: [{ service: 'payments', timeout: 2000 }], source: expect.stringMatching(/^ServicePolicy default\/payments \(resourceVersion \d+\)$/) })
    expect(s.routesOf('payments')).toBeUndefined()
    // One call per service and kind for the whole first state, not one per event.
    expect(calls.filter((c) => c.kind === 'endpoints')).toHaveLength(1)
    expect(calls.filter((c) => c.kind === 'policy')).toHaveLength(1)
  })

  it('follows live changes: a new instance, a deregistration, a policy deleted', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await admin.put(policy('payments', { timeout: '2s' }) as never)
    const first = await register(control.url, 'payments', 4001)
    const { s, calls, until } = sync(control.url)
    await s.start()

    await register(control.url, 'payments', 4002)
    await until(() => urlsOf(calls, 'payments')?.length === 2)
    await new ControlClient({ url: control.url, token: JOIN }).deregister(first.id)
    await until(() => urlsOf(calls, 'payments')?.join() === 'http://127.0.0.1:4002')
    await admin.delete('servicepolicies', 'default', 'payments')
    await until(() => calls.at(-1)?.kind === 'policy')
    expect(calls.at(-1)).toEqual({ kind: 'policy', service: 'payments', specs: [], source: 'ServicePolicy deleted' })
    expect(s.policyOf('payments')).toBeUndefined()
  })

  it('tells a service only when its own state changed', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    await register(control.url, 'payments', 4001)
    const { s, calls, until } = sync(control.url)
    await s.start()
    const before = calls.length
    await register(control.url, 'stock', 5001)
    await until(() => urlsOf(calls, 'stock') !== undefined)
    expect(calls.slice(before).map((c) => c.service)).toEqual(['stock'])
  })

  it('follows only its own namespace', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    await register(control.url, 'payments', 4001)
    const { s } = sync(control.url, {}, 'shop')
    await s.start()
    expect(s.knows('payments')).toBe(false)
  })

  /** A sync following an endpoint (data directory `dataDir`) that knows one payments instance. */
  async function followed() {
    const dataDir = await tempDir()
    const control = await startTestControl({ dataDir })
    await register(control.url, 'payments', 4001)
    // random 0: the shortest backoff, so a test waits for the reconnect, not the jitter.
    const followed = sync(control.url, { random: () => 0 })
    await followed.s.start()
    return { ...followed, control, dataDir }
  }

  it('reconnects after the endpoint restarts, resuming from its resourceVersion, and catches up', async () => {
    const { s, calls, until, control: first, dataDir } = await followed()
    await first.close()
    const control = await startTestControl({ dataDir, port: first.port })
    closers.push(() => control.close())
    await register(control.url, 'payments', 4002)
    await until(() => urlsOf(calls, 'payments')?.length === 2)
    expect(s.status()).toMatchObject({ connected: true, source: 'control', resyncs: 0 })
  })

  it('relists from the full state after a 410 when the endpoint kept too little history', async () => {
    const { s, calls, until, control: first, dataDir } = await followed()
    const control = await restartBehindHistory(first, dataDir, 'payments')
    closers.push(() => control.close())
    await until(() => calls.some((c) => c.kind === 'policy' && c.specs[0]?.timeout === 5000))
    expect(s.status()).toMatchObject({ connected: true, resyncs: 1 })
    expect(urlsOf(calls, 'payments')).toEqual(['http://127.0.0.1:4001'])
  })

  it('starts from a fresh disk snapshot when the endpoint is down, and without one that is older than snapshotMaxAge', async () => {
    const control = await startTestControl()
    const cacheDir = await tempDir()
    const snapshotFile = snapshotFileFor(cacheDir, 'default', 'web')
    const now = { t: Date.UTC(2026, 5, 1) }
    await register(control.url, 'payments', 4001)
    const writer = sync(control.url, { snapshotFile, now: () => now.t })
    await writer.s.start()
    // The snapshot is written shortly after a change (debounced): wait for the file.
    await vi.waitFor(() => readFile(snapshotFile, 'utf8'), { timeout: 5000 })
    expect(JSON.parse(await readFile(snapshotFile, 'utf8'))).toMatchObject({ format: 1, savedAt: '2026-06-01T00:00:00.000Z', controlUrl: control.url })
    writer.s.close()
    await control.close()

    now.t += 3_600_000 // exactly snapshotMaxAge: still usable
    const fresh = sync(control.url, { snapshotFile, now: () => now.t, random: () => 0 })
    expect(await fresh.s.start()).toBe('snapshot')
    expect(urlsOf(fresh.calls, 'payments')).toEqual(['http://127.0.0.1:4001'])
    expect(fresh.s.status()).toMatchObject({ source: 'snapshot', connected: false })
    fresh.s.close()

    now.t += 1
    const stale = sync(control.url, { snapshotFile, now: () => now.t, random: () => 0 })
    expect(await stale.s.start()).toBe('none')
    expect(stale.s.status().lastError).toMatch(/older than snapshotMaxAge; starting without it/)
    expect(stale.s.knows('payments')).toBe(false)
  })

  it('ignores a file that is not a meshlet snapshot', async () => {
    const control = await startTestControl()
    await control.close()
    const cacheDir = await tempDir()
    const snapshotFile = join(cacheDir, 'x.json')
    await writeFile(snapshotFile, JSON.stringify({ hello: 'world' }))
    const { s } = sync(control.url, { snapshotFile, random: () => 0 })
    expect(await s.start()).toBe('none')
    expect(s.status().lastError).toMatch(/is not a meshlet snapshot/)
  })

  it('tells nothing after close()', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const { s, calls } = sync(control.url)
    await s.start()
    s.close()
    const before = calls.length
    const r = await register(control.url, 'payments', 4001)
    // The endpoint has sent the change to every watcher by the time a second write is acknowledged.
    await new ControlClient({ url: control.url, token: JOIN }).heartbeat(r.id)
    expect(calls.length).toBe(before)
    expect(s.status().connected).toBe(true) // as last seen; the sync no longer follows
  })
})

describe('InstanceLease', () => {
  function lease(url: string, reports: Record<string, unknown>[] = [], heartbeatInterval?: number, token = JOIN) {
    const l = new InstanceLease({ client: new ControlClient({ url, token }), instance: { service: 'payments', namespace: 'default', revision: 'v1', zone: 'z1' }, ttl: 60_000, heartbeatInterval, report: () => (reports.push({ n: reports.length }), { state: 'serving' }), random: () => 0.5 })
    closers.push(() => l.end())
    return l
  }

  it('registers once for overlapping calls, with its revision and zone, and deregisters on end()', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const l = lease(control.url)
    const [a, b] = await Promise.all([l.register({ port: 4001 }), l.register({ port: 4001 })])
    expect(a).toBe(b)
    expect(await l.register({ port: 4001 })).toBe(a)
    expect(l.id).toBe(a)
    const listed = await new ControlClient({ url: control.url, token: JOIN }).instances({ service: 'payments' })
    expect(listed.items).toHaveLength(1)
    expect(listed.items[0]!.spec).toMatchObject({ service: 'payments', port: 4001, revision: 'v1', zone: 'z1', protocols: ['http'] })
    expect(await l.end()).toBe(true)
    expect(l.id).toBeUndefined()
    expect((await new ControlClient({ url: control.url, token: JOIN }).instances({ service: 'payments' })).items).toHaveLength(0)
  })

  it('ends at once, without a promise, when it never registered; registering afterwards fails MESHLET_ERR_CLOSED', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const l = lease(control.url)
    expect(l.end()).toBe(false)
    const error = await l.register({ port: 4001 }).catch((e: unknown) => e)
    expect(isMeshletError(error, ErrorCodes.CLOSED)).toBe(true)
  })

  it('gives back a lease whose registration was in flight when end() began', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const l = lease(control.url)
    const registering = l.register({ port: 4001 })
    const ended = l.end()
    const error = await registering.catch((e: unknown) => e)
    expect(isMeshletError(error, ErrorCodes.CLOSED)).toBe(true)
    expect(await ended).toBe(false)
    expect((await new ControlClient({ url: control.url, token: JOIN }).instances({ service: 'payments' })).items).toHaveLength(0)
  })

  it('heartbeats with its report, and registers anew when the endpoint lost the lease', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const reports: Record<string, unknown>[] = []
    const l = lease(control.url, reports, 50)
    const first = await l.register({ port: 4001 })
    const admin = new ControlClient({ url: control.url, token: JOIN })
    await admin.deregister(first) // as if the lease had expired during an outage
    await vi.waitFor(() => expect(l.id).not.toBe(first), { timeout: 5000 })
    expect(l.id).toBeDefined()
    expect(reports.length).toBeGreaterThan(0)
    const items = (await admin.instances({ service: 'payments' })).items
    expect(items.map((i) => i.metadata.name)).toEqual([l.id])
  })

  it('keeps registering in the background while the endpoint is down, and registers once it is back', async () => {
    // A port nobody listens on, then the endpoint on that very port.
    const probe = await startTestControl()
    const port = Number(new URL(probe.url).port)
    await probe.close()
    const l = lease(`http://127.0.0.1:${port}`)
    const first = await l.register({ port: 4001 }).catch((e: unknown) => e)
    expect(isMeshletError(first, ErrorCodes.UNREACHABLE)).toBe(true)
    expect((first as Error).message).toMatch(/could not register .*keeps trying in the background/)
    // A caller that drops the promise (the README's `server.listen(…, () => mesh.register(…))`):
    // no unhandled rejection, which vitest would report as an error of this test.
    void l.register({ port: 4001 })
    const control = await startTestControl({ port })
    closers.push(() => control.close())
    await vi.waitFor(() => expect(l.id).toBeDefined(), { timeout: 10_000 })
    const items = (await new ControlClient({ url: control.url, token: JOIN }).instances({ service: 'payments' })).items
    expect(items.map((i) => i.metadata.name)).toEqual([l.id])
    expect(await l.register({ port: 4001 })).toBe(l.id)
  })

  it('stops at a refusal that retrying cannot fix, answering with the endpoint\'s code and what to do', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const l = lease(control.url, [], undefined, 'not-the-join-token')
    const error = await l.register({ port: 4001 }).catch((e: unknown) => e)
    expect(isMeshletError(error)).toBe(true)
    expect((error as { code: string }).code).toMatch(/^MESHLET_ERR_(UNAUTHENTICATED|FORBIDDEN)$/)
    expect((error as Error).message).toMatch(/refused registration .*Not retried/)
    expect(l.end()).toBe(false) // nothing in flight: it stopped trying
  })

  it('end() during the backoff stops registering at once', async () => {
    const probe = await startTestControl()
    const port = Number(new URL(probe.url).port)
    await probe.close()
    const l = lease(`http://127.0.0.1:${port}`)
    await l.register({ port: 4001 }).catch(() => undefined)
    const waiting = l.register({ port: 4001 }).catch((e: unknown) => e)
    const ended = l.end()
    expect(isMeshletError(await waiting, ErrorCodes.CLOSED)).toBe(true)
    expect(await ended).toBe(false)
  })
})
