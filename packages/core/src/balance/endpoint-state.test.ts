import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { EndpointState } from './endpoint-state.js'

const ADDRESS = { url: 'http://127.0.0.1:3001', protocol: 'http', host: '127.0.0.1', port: 3001 } as const

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('EndpointState peak-EWMA latency', () => {
  it('starts at zero and takes a slower sample at once (the peak)', () => {
    const t0 = performance.now()
    const e = new EndpointState(ADDRESS)
    expect(e.url).toBe('http://127.0.0.1:3001')
    expect(e.latency(t0, 1000)).toBe(0)
    e.observe(100, t0, 1000)
    expect(e.latency(t0, 1000)).toBe(100)
  })

  it('decays toward faster samples with time constant `decay`', () => {
    const t0 = performance.now()
    const e = new EndpointState(ADDRESS)
    e.observe(100, t0, 1000)
    e.observe(0, t0 + 1000, 1000)
    expect(e.latency(t0 + 1000, 1000)).toBeCloseTo(100 * Math.exp(-1), 6)
    // Reading the cost decays it too, so a penalized endpoint is probed again later.
    expect(e.latency(t0 + 2000, 1000)).toBeCloseTo(100 * Math.exp(-2), 6)
    e.observe(50, t0 + 2000, 1000)
    expect(e.latency(t0 + 2000, 1000)).toBe(50)
  })

  it('ignores a faster sample taken at the same instant (no time has passed to decay over)', () => {
    const t0 = performance.now()
    const e = new EndpointState(ADDRESS)
    e.observe(80, t0, 1000)
    e.observe(1, t0, 1000)
    expect(e.latency(t0, 1000)).toBe(80)
  })
})

describe('EndpointState resources', () => {
  it('creates a resource once per key and reuses it', () => {
    const e = new EndpointState(ADDRESS)
    const create = vi.fn(() => ({ close: vi.fn() }))
    const a = e.resource('http', create)
    expect(e.resource('http', create)).toBe(a)
    expect(create).toHaveBeenCalledTimes(1)
    expect(e.resource('grpc', create)).not.toBe(a)
    expect(create).toHaveBeenCalledTimes(2)
  })

  it('closes every resource even when one close() throws synchronously, and does not reject', async () => {
    const e = new EndpointState(ADDRESS)
    const throws = vi.fn(() => {
      throw new Error('boom')
    })
    const after = vi.fn()
    e.resource('grpc', () => ({ close: throws }))
    e.resource('http', () => ({ close: after }))
    await expect(e.closeResources()).resolves.toBeUndefined()
    expect(throws).toHaveBeenCalledTimes(1)
    expect(after).toHaveBeenCalledTimes(1)
  })

  it('closes asynchronous resources and forgets them', async () => {
    const e = new EndpointState(ADDRESS)
    const close = vi.fn(() => Promise.reject(new Error('gone')))
    e.resource('http', () => ({ close }))
    await expect(e.closeResources()).resolves.toBeUndefined()
    await e.closeResources()
    expect(close).toHaveBeenCalledTimes(1)
    const fresh = e.resource('http', () => ({ close: vi.fn() }))
    expect(fresh.close).not.toBe(close)
  })
})
