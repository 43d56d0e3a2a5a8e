import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { isMeshletError, ErrorCodes } from '../errors.js'
import { Lifecycle, type DrainableInbound, type DrainableServer, type LifecycleOptions } from './lifecycle.js'

/** An inbound side and servers that write what is done to them into one log, in order. */
function setup(overrides: Partial<LifecycleOptions> & { stillRunning?: number } = {}) {
  const log: string[] = []
  const inbound: DrainableInbound & { readyNow: boolean; acceptingNow: boolean } = {
    readyNow: true,
    acceptingNow: true,
    get ready() {
      return this.readyNow
    },
    get accepting() {
      return this.acceptingNow
    },
    markNotReady() {
      this.readyNow = false
      log.push('not-ready')
    },
    stopAccepting() {
      this.acceptingNow = false
      log.push('stop-accepting')
    },
    waitIdle(ms) {
      log.push(`wait-idle ${ms}`)
      return Promise.resolve(overrides.stillRunning ?? 0)
    },
    close() {
      log.push('inbound-closed')
    },
  }
  const server = (name: string): DrainableServer => ({
    close(cb) {
      log.push(`${name} close`)
      setImmediate(() => cb?.())
    },
    closeIdleConnections: () => log.push(`${name} close-idle`),
    closeAllConnections: () => log.push(`${name} close-all`),
  })
  const lifecycle = new Lifecycle({
    service: 'web',
    inbound,
    drainTimeout: 500,
    defaultDelay: (registered) => (registered ? 1000 : 0),
    signals: [],
    deregister: () => false,
    closeClients: async () => void log.push('clients-closed'),
    sleep: async (ms) => void log.push(`sleep ${ms}`),
    ...overrides,
  })
  return { lifecycle, inbound, log, server }
}

describe('Lifecycle', () => {
  it('closes in order: not ready → deregister → delay → stop accepting → drain → servers → clients', async () => {
    const { lifecycle, log, server } = setup({
      deregister: async () => {
        log.push('deregistered')
        return true
      },
    })
    lifecycle.attachServer(server('a'))
    await lifecycle.close()
    expect(log).toEqual(['not-ready', 'deregistered', 'sleep 1000', 'stop-accepting', 'a close', 'a close-idle', 'wait-idle 500', 'a close-idle', 'clients-closed', 'inbound-closed'])
    expect(lifecycle.state).toBe('closed')
  })

  it('without a registration or a server stops accepting in the same tick, with no delay', () => {
    const { lifecycle, log } = setup()
    void lifecycle.close()
    expect(log).toEqual(['not-ready', 'stop-accepting', 'wait-idle 500'])
    expect(lifecycle.state).toBe('draining')
  })

  it('uses drain.delay when set, even when not registered, but only with a server to drain', async () => {
    const withServer = setup({ drainDelay: 250 })
    withServer.lifecycle.attachServer(withServer.server('a'))
    await withServer.lifecycle.close()
    expect(withServer.log).toContain('sleep 250')
    const withoutServer = setup({ drainDelay: 250 })
    await withoutServer.lifecycle.close()
    expect(withoutServer.log.some((l) => l.startsWith('sleep'))).toBe(false)
  })

  it('closes busy connections when requests are still running at the drain timeout', async () => {
    const { lifecycle, log, server } = setup({ stillRunning: 2 })
    lifecycle.attachServer(server('a'))
    await lifecycle.close()
    expect(log.slice(log.indexOf('wait-idle 500'))).toEqual(['wait-idle 500', 'a close-all', 'clients-closed', 'inbound-closed'])
  })

  it('runs once: later close() calls share the first one\'s promise', async () => {
    const { lifecycle, log } = setup()
    const first = lifecycle.close()
    expect(lifecycle.close()).toBe(first)
    await first
    expect(log.filter((l) => l === 'not-ready')).toHaveLength(1)
  })

  it('refuses a server once close() began, with MESHLET_ERR_CLOSED', () => {
    const { lifecycle, server } = setup()
    void lifecycle.close()
    expect(lifecycle.closing).toBe(true)
    let error: unknown
    try {
      lifecycle.attachServer(server('late'))
    } catch (err) {
      error = err
    }
    expect(isMeshletError(error, ErrorCodes.CLOSED)).toBe(true)
  })

  it('still closes the clients and the inbound side when deregistration or closing the clients fails', async () => {
    const { lifecycle, log } = setup({
      deregister: () => Promise.reject(new Error('unreachable')),
      closeClients: () => Promise.reject(new Error('pool stuck')),
    })
    await lifecycle.close()
    expect(log.at(-1)).toBe('inbound-closed')
  })

  it('installs its signal handlers with the first server, and a signal closes it', async () => {
    const before = process.listenerCount('SIGHUP')
    const { lifecycle, log, server } = setup({ signals: ['SIGHUP'] })
    expect(process.listenerCount('SIGHUP')).toBe(before)
    lifecycle.attachServer(server('a'))
    lifecycle.attachServer(server('b'))
    expect(process.listenerCount('SIGHUP')).toBe(before + 1)
    // Another listener keeps the process alive: the handler must not re-raise the signal then.
    const keepAlive = () => {}
    process.on('SIGHUP', keepAlive)
    try {
      process.emit('SIGHUP', 'SIGHUP')
      await lifecycle.close()
      await new Promise((r) => setImmediate(r))
      expect(log).toContain('a close')
      expect(log).toContain('b close')
      expect(process.listenerCount('SIGHUP')).toBe(before + 1) // ours removed, keepAlive stays
    } finally {
      process.off('SIGHUP', keepAlive)
    }
  })

  it('publishes its phases on meshlet:drain with durations from its clock', async () => {
    let now = 1000
    const { lifecycle } = setup({ now: () => now, sleep: async () => void (now += 40) , drainDelay: 40 })
    lifecycle.attachServer({ close: (cb) => void setImmediate(() => cb?.()) })
    const phases: unknown[] = []
    const onDrain = (m: unknown) => phases.push(m)
    subscribe('meshlet:drain', onDrain)
    try {
      await lifecycle.close()
    } finally {
      unsubscribe('meshlet:drain', onDrain)
    }
    expect(phases).toEqual([
      { service: 'web', phase: 'not-ready' },
      { service: 'web', phase: 'stop-accepting' },
      { service: 'web', phase: 'drained', stillRunning: 0, ms: 40 },
      { service: 'web', phase: 'closed', ms: 40 },
    ])
  })
})
