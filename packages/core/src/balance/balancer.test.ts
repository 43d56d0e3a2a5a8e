import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DEFAULT_POLICY, type BalancerPolicy, type OutlierPolicy } from '../config/mesh-options.js'
import type { EndpointAddress } from '../discovery/resolver.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { Classification } from '../stack/response-classifier.js'
import { newCallContext, type CallContext } from '../client/call-context.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { Balancer } from './balancer.js'
import type { EndpointState } from './endpoint-state.js'

const metrics = new MeshMetrics()
const P2C: BalancerPolicy = { type: 'p2c-peak-ewma', decay: 10_000, failurePenalty: 1000, loadFactor: 1.25 }
const OUTLIER: OutlierPolicy = { consecutiveFailures: 3, interval: 10_000, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 50 }

const open: Balancer[] = []

function address(port: number, zone?: string): EndpointAddress {
  return { url: `http://127.0.0.1:${port}`, protocol: 'http', host: '127.0.0.1', port, zone }
}

function balancer(endpoints: EndpointAddress[], opts: { policy?: Partial<BalancerPolicy>; outlier?: Partial<OutlierPolicy> | false; zone?: string } = {}): Balancer {
  const outlier = opts.outlier === false ? false : { ...OUTLIER, ...opts.outlier }
  const b = new Balancer('payments', { ...P2C, ...opts.policy }, outlier, opts.zone, metrics)
  b.applyChanges(endpoints.map((endpoint) => ({ type: 'insert', endpoint })))
  open.push(b)
  return b
}

function ctx(tried?: EndpointState[]): CallContext {
  const c = newCallContext('payments', Infinity, undefined, true)
  c.tried = tried
  return c
}

/** Every endpoint's state by port, found through the picker (each pick avoids those already found). */
function states(b: Balancer): Map<number, EndpointState> {
  const found: EndpointState[] = []
  for (let i = 0; i < b.size; i++) found.push(b.pick(ctx(found)))
  return new Map(found.map((e) => [e.address.port, e]))
}

function countPicks(b: Balancer, n: number, c: () => CallContext = () => ctx()): Map<number, number> {
  const counts = new Map<number, number>()
  for (let i = 0; i < n; i++) {
    const port = b.pick(c()).address.port
    counts.set(port, (counts.get(port) ?? 0) + 1)
  }
  return counts
}

function fail(b: Balancer, e: EndpointState, times: number): void {
  for (let i = 0; i < times; i++) b.record(e, Classification.Failure, 2)
}

function ejected(b: Balancer): number[] {
  return b
    .snapshot()
    .filter((s) => s.ejected)
    .map((s) => Number(new URL(s.url).port))
}

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()))
  vi.useRealTimers()
})

describe('peak-EWMA power of two choices', () => {
  it('always picks the faster of two endpoints', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    b.record(e.get(1)!, Classification.Success, 5)
    b.record(e.get(2)!, Classification.Success, 100)
    expect(countPicks(b, 1000).get(1)).toBe(1000)
  })

  it('prefers a low-latency endpoint among three (chosen whenever it is a candidate: ~2/3)', () => {
    const b = balancer([address(1), address(2), address(3)])
    const e = states(b)
    b.record(e.get(1)!, Classification.Success, 5)
    b.record(e.get(2)!, Classification.Success, 100)
    b.record(e.get(3)!, Classification.Success, 100)
    const counts = countPicks(b, 1000)
    // Expected 667 (sd ≈ 15); the slow ones ~167 each.
    expect(counts.get(1)).toBeGreaterThan(580)
    expect(counts.get(1)).toBeLessThan(750)
    expect(counts.get(2)).toBeGreaterThan(90)
    expect(counts.get(3)).toBeGreaterThan(90)
  })

  it('weighs latency by requests in flight', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    b.record(e.get(1)!, Classification.Success, 10)
    b.record(e.get(2)!, Classification.Success, 50)
    e.get(1)!.inflight = 20 // cost 10 × 21 = 210 against 50 × 1
    expect(countPicks(b, 100).get(2)).toBe(100)
  })

  it('charges a fast failure the failure penalty, so a failing endpoint does not attract traffic', () => {
    const b = balancer([address(1), address(2)], { outlier: false })
    const e = states(b)
    b.record(e.get(1)!, Classification.Failure, 1)
    b.record(e.get(2)!, Classification.Success, 50)
    expect(b.snapshot().find((s) => s.url.endsWith(':1'))!.latencyMs).toBe(1000)
    expect(countPicks(b, 100).get(2)).toBe(100)
  })

  it('lets a penalized endpoint decay back toward its peers over time', () => {
    const b = balancer([address(1), address(2)], { outlier: false })
    const e = states(b)
    b.record(e.get(1)!, Classification.Failure, 1)
    b.record(e.get(2)!, Classification.Success, 50)
    vi.advanceTimersByTime(60_000) // six decay time constants: 1000 × e^-6 ≈ 2.5 ms, 50 × e^-6 ≈ 0.12 ms
    const [one, two] = b.snapshot()
    expect(one!.latencyMs).toBeLessThan(3)
    expect(two!.latencyMs).toBeLessThan(one!.latencyMs)
  })

  it('ranks reported server load into the cost', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    b.record(e.get(1)!, Classification.Success, 10)
    b.record(e.get(2)!, Classification.Success, 15)
    b.reportLoad(e.get(1)!, 0.9) // 10 × 1.9 = 19 > 15
    expect(countPicks(b, 100).get(2)).toBe(100)
    b.reportLoad(e.get(1)!, 5)
    expect(e.get(1)!.reportedLoad).toBe(1)
  })
})

describe('outlier ejection', () => {
  it('ejects an endpoint after N consecutive failures, and only then', () => {
    const b = balancer([address(1), address(2), address(3), address(4)])
    const e = states(b)
    fail(b, e.get(1)!, 2)
    b.record(e.get(1)!, Classification.Success, 5) // a success resets the run
    fail(b, e.get(1)!, 2)
    b.record(e.get(1)!, Classification.Ignorable, 5) // says nothing about health: neither resets nor counts
    expect(ejected(b)).toEqual([])
    fail(b, e.get(1)!, 1)
    expect(ejected(b)).toEqual([1])
    expect(countPicks(b, 300).has(1)).toBe(false)
    const snap = b.snapshot().find((s) => s.url.endsWith(':1'))!
    expect(snap).toMatchObject({ ejected: true, ejections: 1, ejectedForMs: 30_000, failures: 5, requests: 7 })
  })

  it('uses the default classification constants: RetryableFailure counts as a failure', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    for (let i = 0; i < 3; i++) b.record(e.get(2)!, Classification.RetryableFailure, 1)
    expect(ejected(b)).toEqual([2])
  })

  it('never ejects the only endpoint', () => {
    const b = balancer([address(1)], { outlier: { maxEjectionPercent: 100 } })
    const e = states(b)
    fail(b, e.get(1)!, 50)
    expect(ejected(b)).toEqual([])
    expect(b.pick(ctx()).address.port).toBe(1)
  })

  it('ejects only one of two endpoints', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    fail(b, e.get(1)!, 3)
    fail(b, e.get(2)!, 3)
    expect(ejected(b)).toEqual([1])
    expect(countPicks(b, 50).get(2)).toBe(50)
  })

  it('ejects at most maxEjectionPercent of ten endpoints', () => {
    const b = balancer(Array.from({ length: 10 }, (_, i) => address(i + 1)))
    for (const e of states(b).values()) fail(b, e, 3)
    expect(ejected(b)).toHaveLength(5)
  })

  it('never ejects all endpoints even at maxEjectionPercent 100', () => {
    const b = balancer([address(1), address(2), address(3)], { outlier: { maxEjectionPercent: 100 } })
    for (const e of states(b).values()) fail(b, e, 3)
    expect(ejected(b)).toHaveLength(2)
    expect(() => b.pick(ctx())).not.toThrow()
  })

  it('ejects nothing at maxEjectionPercent 0', () => {
    const b = balancer([address(1), address(2), address(3)], { outlier: { maxEjectionPercent: 0 } })
    for (const e of states(b).values()) fail(b, e, 3)
    expect(ejected(b)).toEqual([])
  })

  it('ejects nothing when outlier detection is off', () => {
    const b = balancer([address(1), address(2)], { outlier: false })
    fail(b, states(b).get(1)!, 100)
    expect(ejected(b)).toEqual([])
  })

  it('restores an endpoint after baseEjectionTime', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    fail(b, e.get(1)!, 3)
    vi.advanceTimersByTime(29_999)
    expect(ejected(b)).toEqual([1])
    vi.advanceTimersByTime(1)
    expect(ejected(b)).toEqual([])
    expect(e.get(1)!.consecutiveFailures).toBe(0)
    expect(countPicks(b, 1000, () => ctx([e.get(2)!])).get(1)).toBe(1000)
  })

  it('ejects for longer on each repeat ejection, up to maxEjectionTime', () => {
    const b = balancer([address(1), address(2)], { outlier: { maxEjectionTime: 70_000 } })
    const one = states(b).get(1)!
    const ejectedFor = (): number => b.snapshot().find((s) => s.url.endsWith(':1'))!.ejectedForMs
    fail(b, one, 3)
    expect(ejectedFor()).toBe(30_000)
    vi.advanceTimersByTime(30_000)
    fail(b, one, 3)
    expect(ejectedFor()).toBe(60_000)
    vi.advanceTimersByTime(59_999)
    expect(ejected(b)).toEqual([1])
    vi.advanceTimersByTime(1)
    expect(ejected(b)).toEqual([])
    fail(b, one, 3)
    expect(one.ejections).toBe(3)
    expect(ejectedFor()).toBe(70_000) // 90 s capped
  })

  it('works off the repeat multiplier while an endpoint stays healthy', () => {
    const b = balancer([address(1), address(2)])
    const one = states(b).get(1)!
    fail(b, one, 3)
    vi.advanceTimersByTime(30_000)
    expect(one.ejections).toBe(1)
    vi.advanceTimersByTime(20_000) // two clean sweeps
    expect(one.ejections).toBe(0)
    fail(b, one, 3)
    expect(b.snapshot().find((s) => s.url.endsWith(':1'))!.ejectedForMs).toBe(30_000)
  })

  it('frees the ejection slot when an ejected endpoint is removed', () => {
    const b = balancer([address(1), address(2), address(3)])
    const e = states(b)
    fail(b, e.get(1)!, 3)
    fail(b, e.get(2)!, 3)
    expect(ejected(b)).toEqual([1])
    b.applyChanges([{ type: 'remove', url: 'http://127.0.0.1:1' }, { type: 'insert', endpoint: address(4) }])
    fail(b, e.get(2)!, 3)
    expect(ejected(b)).toEqual([2])
  })

  it('does not let a late failure on a removed endpoint take an ejection slot', () => {
    const b = balancer([address(1), address(2), address(3)])
    const e = states(b)
    fail(b, e.get(1)!, 2)
    b.applyChanges([{ type: 'remove', url: 'http://127.0.0.1:1' }])
    // A call that was in flight to the removed endpoint fails afterwards.
    fail(b, e.get(1)!, 1)
    fail(b, e.get(2)!, 3)
    expect(ejected(b)).toEqual([2])
    vi.advanceTimersByTime(30_000)
    fail(b, e.get(3)!, 3)
    expect(ejected(b)).toEqual([3])
  })
})

describe('picking', () => {
  it('throws MESHLET_ERR_NO_ENDPOINT, retryable, when there is no endpoint', () => {
    const b = balancer([])
    let error: unknown
    try {
      b.pick(ctx())
    } catch (err) {
      error = err
    }
    expect(isMeshletError(error, ErrorCodes.NO_ENDPOINT)).toBe(true)
    expect(error).toMatchObject({ retryable: true, details: { service: 'payments', endpoints: 0 } })
    expect((error as Error).message).toContain('"payments"')
  })

  it('throws MESHLET_ERR_NO_ENDPOINT after every endpoint is removed', () => {
    const b = balancer([address(1)])
    b.applyChanges([{ type: 'remove', url: 'http://127.0.0.1:1' }])
    expect(b.size).toBe(0)
    expect(() => b.pick(ctx())).toThrow(expect.objectContaining({ code: ErrorCodes.NO_ENDPOINT }))
  })

  it('avoids endpoints the call already tried while another is ready', () => {
    const b = balancer([address(1), address(2), address(3)])
    const e = states(b)
    expect(countPicks(b, 200, () => ctx([e.get(1)!, e.get(2)!])).get(3)).toBe(200)
  })

  it('falls back to a tried endpoint when every endpoint was tried', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    const counts = countPicks(b, 200, () => ctx([e.get(1)!, e.get(2)!]))
    expect((counts.get(1) ?? 0) + (counts.get(2) ?? 0)).toBe(200)
  })

  it('prefers zone-local endpoints while any is ready', () => {
    const b = balancer([address(1, 'z1'), address(2, 'z2'), address(3, 'z2'), address(4)], { zone: 'z1' })
    expect(countPicks(b, 200).get(1)).toBe(200)
  })

  it('falls back to other zones when the zone-local endpoints are ejected', () => {
    const b = balancer([address(1, 'z1'), address(2, 'z2'), address(3, 'z2')], { zone: 'z1' })
    const local = b.pick(ctx())
    expect(local.address.port).toBe(1)
    fail(b, local, 3)
    const counts = countPicks(b, 300)
    expect(counts.has(1)).toBe(false)
    expect(counts.get(2)).toBeGreaterThan(50)
    expect(counts.get(3)).toBeGreaterThan(50)
  })

  it('uses every endpoint when no endpoint is in the local zone', () => {
    const b = balancer([address(1, 'z2'), address(2, 'z3')], { zone: 'z1', policy: { type: 'round-robin' } })
    const counts = countPicks(b, 100)
    expect(counts.get(1)).toBe(50)
    expect(counts.get(2)).toBe(50)
  })

  it('cycles evenly with round-robin', () => {
    const b = balancer([address(1), address(2), address(3)], { policy: { type: 'round-robin' } })
    const sequence = Array.from({ length: 300 }, () => b.pick(ctx()).address.port)
    for (const port of [1, 2, 3]) expect(sequence.filter((p) => p === port)).toHaveLength(100)
    for (let i = 3; i < sequence.length; i++) expect(sequence[i]).toBe(sequence[i - 3])
  })

  it('balances in-flight requests with least-request', () => {
    const b = balancer([address(1), address(2)], { policy: { type: 'least-request' } })
    const e = states(b)
    e.get(1)!.inflight = 3
    expect(countPicks(b, 100).get(2)).toBe(100)
  })
})

describe('membership and resources', () => {
  it('ignores a duplicate insert and a remove of an unknown endpoint', () => {
    const b = balancer([address(1)])
    const before = states(b).get(1)
    b.applyChanges([{ type: 'insert', endpoint: address(1) }, { type: 'remove', url: 'http://127.0.0.1:9' }])
    expect(b.size).toBe(1)
    expect(b.pick(ctx())).toBe(before)
  })

  it('closes an endpoint\'s resources when it is removed', () => {
    const b = balancer([address(1), address(2)])
    const e = states(b)
    const close = vi.fn()
    const pool = e.get(1)!.resource('http', () => ({ close }))
    expect(e.get(1)!.resource('http', () => ({ close: vi.fn() }))).toBe(pool)
    const other = vi.fn()
    e.get(2)!.resource('http', () => ({ close: other }))
    b.applyChanges([{ type: 'remove', url: 'http://127.0.0.1:1' }])
    expect(close).toHaveBeenCalledTimes(1)
    expect(other).not.toHaveBeenCalled()
    expect(countPicks(b, 20).get(2)).toBe(20)
  })

  it('survives a resource whose close() throws when its endpoint is removed', async () => {
    const b = balancer([address(1), address(2)])
    const close = vi.fn(() => {
      throw new Error('already destroyed')
    })
    const next = vi.fn()
    states(b).get(1)!.resource('http', () => ({ close }))
    states(b).get(1)!.resource('grpc', () => ({ close: next }))
    // An unhandled rejection here would fail the run (and crash a real process).
    expect(() => b.applyChanges([{ type: 'remove', url: 'http://127.0.0.1:1' }])).not.toThrow()
    await vi.advanceTimersByTimeAsync(0)
    expect(close).toHaveBeenCalledTimes(1)
    expect(next).toHaveBeenCalledTimes(1)
    expect(b.size).toBe(1)
  })

  it('closes every resource on close() and then has no endpoint', async () => {
    const b = balancer([address(1), address(2)])
    const closes = [...states(b).values()].map((e) => {
      const close = vi.fn(() => Promise.reject(new Error('already closed')))
      e.resource('grpc', () => ({ close }))
      return close
    })
    await b.close()
    for (const close of closes) expect(close).toHaveBeenCalledTimes(1)
    expect(() => b.pick(ctx())).toThrow(expect.objectContaining({ code: ErrorCodes.NO_ENDPOINT }))
  })

  it('reports each endpoint in snapshot()', () => {
    const b = balancer([address(1, 'z1'), address(2)])
    const e = states(b)
    e.get(1)!.inflight = 2
    b.record(e.get(1)!, Classification.Success, 12.5)
    expect(b.snapshot()).toEqual([
      { url: 'http://127.0.0.1:1', zone: 'z1', revision: undefined, latencyMs: 12.5, inflight: 2, requests: 1, failures: 0, consecutiveFailures: 0, ejected: false, ejectedForMs: 0, ejections: 0, reportedLoad: 0 },
      { url: 'http://127.0.0.1:2', zone: undefined, revision: undefined, latencyMs: 0, inflight: 0, requests: 0, failures: 0, consecutiveFailures: 0, ejected: false, ejectedForMs: 0, ejections: 0, reportedLoad: 0 },
    ])
  })
})

describe('DEFAULT_POLICY outlier settings', () => {
  it('eject after 5 consecutive failures', () => {
    const b = new Balancer('payments', DEFAULT_POLICY.balancer, DEFAULT_POLICY.outlier, undefined, metrics)
    open.push(b)
    b.applyChanges([{ type: 'insert', endpoint: address(1) }, { type: 'insert', endpoint: address(2) }])
    const one = states(b).get(1)!
    fail(b, one, 4)
    expect(ejected(b)).toEqual([])
    fail(b, one, 1)
    expect(ejected(b)).toEqual([1])
  })
})
