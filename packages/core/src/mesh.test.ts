import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConfigError, ErrorCodes, isMeshletError } from './errors.js'
import { createMesh, type DrainableServer, type Mesh } from './mesh.js'

const meshes: Mesh[] = []

async function mesh(options: Parameters<typeof createMesh>[0]): Promise<Mesh> {
  const m = await createMesh(options)
  meshes.push(m)
  return m
}

function fakeServer() {
  return {
    close: vi.fn((cb?: (err?: Error) => void) => void cb?.()),
    closeIdleConnections: vi.fn(),
    closeAllConnections: vi.fn(),
  } satisfies DrainableServer
}

afterEach(async () => {
  vi.useRealTimers()
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

describe('createMesh with static services', () => {
  it('makes each service a destination with its resolved policy', async () => {
    const m = await mesh({
      service: 'web',
      defaults: { timeout: '3s' },
      services: {
        payments: { endpoints: ['http://127.0.0.1:3001', 'http://127.0.0.1:3002'], retries: { attempts: 1 } },
        inventory: { endpoints: [{ url: 'https://10.0.0.7:8443', zone: 'z1', revision: 'v2' }], retries: false },
      },
    })
    expect(m.destination('payments')?.name).toBe('payments')
    expect(m.destination('payments')?.policy).toMatchObject({ timeout: 3000, retries: { attempts: 1 } })
    expect(m.destination('inventory')?.policy.retries).toBe(false)
    expect(m.destination('inventory')?.budget).toBeUndefined()
    expect(m.destination('example')).toBeUndefined()
    expect(m.destination('constructor')).toBeUndefined()
  })

  it('shows destinations and endpoints in inspect()', async () => {
    const m = await mesh({
      service: 'web',
      zone: 'z1',
      services: {
        payments: { endpoints: ['http://127.0.0.1:3001', 'http://127.0.0.1'] },
        inventory: { endpoints: [{ url: 'https://10.0.0.7:8443', zone: 'z1', revision: 'v2' }] },
      },
    })
    const snap = m.inspect()
    expect(snap).toMatchObject({ service: 'web', namespace: 'default', revision: undefined, zone: 'z1', configVersion: 1, state: 'serving', inbound: { inflight: 0 } })
    expect(Object.keys(snap.destinations).sort()).toEqual(['inventory', 'payments'])
    const payments = snap.destinations.payments!
    expect(payments.endpoints.map((e) => e.url)).toEqual(['http://127.0.0.1:3001', 'http://127.0.0.1:80'])
    expect(payments.resolver).toBe('static list (http://127.0.0.1:3001, http://127.0.0.1:80)')
    expect(payments.breaker).toBeNull() // built with the first client stack
    expect(payments.retryBudget).toEqual({ balance: 20 }) // 10/s: two 1 s buckets of reserve at once
    expect(payments.lastDiscoveryError).toBeNull()
    expect(snap.destinations.inventory!.endpoints).toEqual([expect.objectContaining({ url: 'https://10.0.0.7:8443', zone: 'z1', revision: 'v2', ejected: false })])
  })

  it('rejects invalid options with a ConfigError naming the field', async () => {
    const error: unknown = await createMesh({ service: 'web', services: { payments: { endpoints: ['http://127.0.0.1:99999'] } } }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual(['services.payments.endpoints[0]'])
    const missing: unknown = await createMesh({} as Parameters<typeof createMesh>[0]).catch((e: unknown) => e)
    expect(isMeshletError(missing, ErrorCodes.CONFIG_INVALID)).toBe(true)
  })
})

describe('createMesh with dns:// endpoints', () => {
  const LOOPBACK = (port: number) => new RegExp(`^http://(127\\.0\\.0\\.1|\\[::1\\]):${port}$`)

  it('resolves dns://localhost:PORT through the system resolver to loopback addresses', async () => {
    const m = await mesh({ service: 'web', services: { payments: { endpoints: ['dns://localhost:39517'] } } })
    const d = m.inspect().destinations.payments!
    expect(d.resolver).toBe('dns://localhost:39517 (every 5000ms)')
    expect(d.endpoints.length).toBeGreaterThanOrEqual(1)
    for (const e of d.endpoints) expect(e.url).toMatch(LOOPBACK(39517))
    expect(d.lastDiscoveryError).toBeNull()
  })

  it('keeps an explicit :80 on a dns:// endpoint', async () => {
    const m = await mesh({ service: 'web', services: { payments: { endpoints: ['dns://localhost:80'] } } })
    const urls = m.inspect().destinations.payments!.endpoints.map((e) => e.url)
    expect(urls.length).toBeGreaterThanOrEqual(1)
    for (const url of urls) expect(url).toMatch(LOOPBACK(80))
  })

  it('merges static and dns:// endpoints of one service', async () => {
    const m = await mesh({ service: 'web', dnsRefresh: '1s', services: { payments: { endpoints: ['http://10.1.2.3:8080', 'dns://localhost:39518'] } } })
    const d = m.inspect().destinations.payments!
    expect(d.resolver).toBe('static list (http://10.1.2.3:8080) + dns://localhost:39518 (every 1000ms)')
    expect(d.endpoints[0]!.url).toBe('http://10.1.2.3:8080')
    expect(d.endpoints.length).toBeGreaterThanOrEqual(2)
    for (const e of d.endpoints.slice(1)) expect(e.url).toMatch(LOOPBACK(39518))
  })
})

describe('Mesh.close', () => {
  it('is idempotent: later calls share the first call\'s promise', async () => {
    const m = await mesh({ service: 'web', services: { payments: { endpoints: ['http://127.0.0.1:3001'] } } })
    const first = m.close()
    expect(m.close()).toBe(first)
    await first
    await expect(m.close()).resolves.toBeUndefined()
    expect(m.inspect().state).toBe('closed')
    expect(m.inspect().destinations.payments!.endpoints).toEqual([])
    expect(() => m.attachServer(fakeServer())).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
  })

  it('closes through Symbol.asyncDispose', async () => {
    const m = await mesh({ service: 'web' })
    await m[Symbol.asyncDispose]()
    expect(m.inspect().state).toBe('closed')
  })

  it('drains in order: not ready, stop accepting, drained, closed; and closes attached servers', async () => {
    const phases: string[] = []
    const onDrain = (message: unknown) => void phases.push((message as { phase: string }).phase)
    subscribe('meshlet:drain', onDrain)
    try {
      const m = await mesh({ service: 'web', shutdownSignals: false })
      const server = fakeServer()
      m.attachServer(server)
      await m.close()
      expect(phases).toEqual(['not-ready', 'stop-accepting', 'drained', 'closed'])
      expect(server.close).toHaveBeenCalledTimes(1)
      expect(server.closeIdleConnections).toHaveBeenCalled()
      expect(server.closeAllConnections).not.toHaveBeenCalled()
      expect(m.inbound.accepting).toBe(false)
    } finally {
      unsubscribe('meshlet:drain', onDrain)
    }
  })

  it('waits for in-flight requests up to drain.timeout, then closes all connections', async () => {
    vi.useFakeTimers()
    const m = await mesh({ service: 'web', shutdownSignals: false, drain: { timeout: '2s' } })
    const server = fakeServer()
    m.attachServer(server)
    m.inbound.enter()
    let closed = false
    void m.close().then(() => (closed = true))
    await vi.advanceTimersByTimeAsync(1999)
    expect(closed).toBe(false)
    expect(m.inspect().state).toBe('draining')
    await vi.advanceTimersByTimeAsync(1)
    expect(closed).toBe(true)
    expect(server.closeAllConnections).toHaveBeenCalledTimes(1)
  })

  it('waits drain.delay before refusing requests when a server is attached', async () => {
    vi.useFakeTimers()
    const m = await mesh({ service: 'web', shutdownSignals: false, drain: { delay: '5s' } })
    m.attachServer(fakeServer())
    const closing = m.close()
    expect(m.inspect().state).toBe('not-ready')
    expect(m.inbound.admit(undefined).ok).toBe(true)
    await vi.advanceTimersByTimeAsync(5000)
    await closing
    expect(m.inbound.admit(undefined).ok).toBe(false)
  })

  it('installs its shutdown signal listeners with the first server and removes them on close', async () => {
    const before = process.listenerCount('SIGTERM')
    const m = await mesh({ service: 'web' })
    expect(process.listenerCount('SIGTERM')).toBe(before)
    m.attachServer(fakeServer())
    m.attachServer(fakeServer())
    expect(process.listenerCount('SIGTERM')).toBe(before + 1)
    await m.close()
    expect(process.listenerCount('SIGTERM')).toBe(before)
  })
})
