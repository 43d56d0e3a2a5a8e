import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MAX_INBOUND_DEADLINE_MS } from '../deadline/call-scope.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { InboundGate, parseLoadHeader } from './inbound-gate.js'

const NOW = 1_700_000_000_000
let gate: InboundGate
let metrics: MeshMetrics

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
  metrics = new MeshMetrics()
  gate = new InboundGate('orders', metrics)
})
afterEach(() => {
  gate.close()
  vi.useRealTimers()
})

describe('InboundGate.admit', () => {
  it('admits a request with no deadline header, with an infinite deadline', () => {
    expect(gate.admit(undefined)).toEqual({ ok: true, deadline: Infinity })
  })

  it('admits a request whose deadline is ahead, keeping the deadline', () => {
    expect(gate.admit(String(NOW + 250))).toEqual({ ok: true, deadline: NOW + 250 })
  })

  it('clamps a far deadline', () => {
    expect(gate.admit(String(NOW + 10 * MAX_INBOUND_DEADLINE_MS))).toEqual({ ok: true, deadline: NOW + MAX_INBOUND_DEADLINE_MS })
  })

  it.each([
    ['already passed', NOW - 30],
    ['exactly now', NOW],
  ])('refuses a deadline that has %s with 504 MESHLET_ERR_DEADLINE, not processed', (_what, deadline) => {
    const a = gate.admit(String(deadline))
    if (a.ok) return expect.unreachable('admitted a late request')
    expect(a.status).toBe(504)
    expect(a.rejected).toBe(false)
    expect(isMeshletError(a.error, ErrorCodes.DEADLINE)).toBe(true)
    expect(a.error.message).toContain(`passed ${NOW - deadline}ms before "orders" received the request`)
  })

  it.each([['abc'], ['-1'], ['1e10'], [['x']]])('refuses a malformed deadline %j with 400 MESHLET_ERR_BAD_HEADER', (header) => {
    const a = gate.admit(header)
    if (a.ok) return expect.unreachable('admitted a bad header')
    expect(a.status).toBe(400)
    expect(a.rejected).toBe(false)
    expect(isMeshletError(a.error, ErrorCodes.BAD_HEADER)).toBe(true)
  })

  it('refuses everything with 503, rejected and retryable, after stopAccepting()', () => {
    expect(gate.accepting).toBe(true)
    gate.stopAccepting()
    expect(gate.accepting).toBe(false)
    expect(gate.ready).toBe(false)
    for (const header of [undefined, String(NOW + 1000), 'garbage']) {
      const a = gate.admit(header)
      if (a.ok) return expect.unreachable('admitted while draining')
      expect(a.status).toBe(503)
      expect(a.rejected).toBe(true)
      expect(a.error).toMatchObject({ code: ErrorCodes.DRAINING, rejected: true, retryable: true })
    }
  })

  it('counts each refusal by reason, and nothing for an admission', () => {
    const add = vi.spyOn(metrics.admissionRejected, 'add')
    gate.admit(undefined)
    expect(add).not.toHaveBeenCalled()
    gate.admit('abc')
    gate.admit(String(NOW - 1))
    gate.stopAccepting()
    gate.admit(undefined)
    expect(add.mock.calls).toEqual([
      [1, { 'meshlet.rejection.reason': 'bad_header' }],
      [1, { 'meshlet.rejection.reason': 'deadline' }],
      [1, { 'meshlet.rejection.reason': 'draining' }],
    ])
  })

  it('keeps serving after markNotReady() while reporting not ready', () => {
    gate.markNotReady()
    expect(gate.ready).toBe(false)
    expect(gate.accepting).toBe(true)
    expect(gate.admit(undefined).ok).toBe(true)
  })
})

describe('InboundGate in-flight tracking and waitIdle', () => {
  it('counts requests in flight', () => {
    gate.enter()
    gate.enter()
    expect(gate.inflight).toBe(2)
    gate.leave()
    expect(gate.inflight).toBe(1)
  })

  it('resolves waitIdle at once with 0 when nothing is in flight', async () => {
    await expect(gate.waitIdle(1000)).resolves.toBe(0)
  })

  it('resolves waitIdle with 0 when in-flight requests finish before the timeout', async () => {
    gate.enter()
    gate.enter()
    let settled: number | undefined
    void gate.waitIdle(5000).then((n) => (settled = n))
    gate.leave()
    await vi.advanceTimersByTimeAsync(100)
    expect(settled).toBeUndefined()
    gate.leave()
    await vi.advanceTimersByTimeAsync(0)
    expect(settled).toBe(0)
  })

  it('resolves waitIdle with the number still running after the timeout', async () => {
    gate.enter()
    gate.enter()
    gate.enter()
    let settled: number | undefined
    void gate.waitIdle(5000).then((n) => (settled = n))
    gate.leave()
    await vi.advanceTimersByTimeAsync(4999)
    expect(settled).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    expect(settled).toBe(2)
    // A late finish after the timeout must not throw or resolve anything again.
    gate.leave()
    gate.leave()
    expect(gate.inflight).toBe(0)
  })
})

describe('InboundGate.latestDeadline', () => {
  it('is the latest deadline of the scopes in flight: 0 with none, Infinity once one has none', () => {
    expect(gate.latestDeadline()).toBe(0)
    const a = { deadline: NOW + 100, signal: undefined }
    const b = { deadline: NOW + 900, signal: undefined }
    const open = { deadline: Infinity, signal: undefined }
    gate.enter(a)
    gate.enter(b)
    gate.enter()
    expect(gate.latestDeadline()).toBe(NOW + 900)
    gate.leave(b)
    expect(gate.latestDeadline()).toBe(NOW + 100)
    gate.enter(open)
    expect(gate.latestDeadline()).toBe(Infinity)
    gate.leave(open)
    gate.leave(a)
    gate.leave()
    expect(gate.latestDeadline()).toBe(0)
    expect(gate.inflight).toBe(0)
  })
})

describe('InboundGate load report', () => {
  it('reports utilization and in-flight count, refreshed by a sampler while serving', async () => {
    expect(gate.loadReport()).toBe('0.00; inflight=0')
    gate.enter()
    gate.enter()
    await vi.advanceTimersByTimeAsync(250)
    expect(gate.loadReport()).toMatch(/^(0|1)\.\d\d; inflight=2$/)
    expect(parseLoadHeader(gate.loadReport())).toBe(gate.utilization === 1 ? 1 : Number(gate.utilization.toFixed(2)))
  })
})

describe('parseLoadHeader', () => {
  it.each([
    ['0.42; inflight=3', 0.42],
    ['0', 0],
    ['1', 1],
    ['0.5', 0.5],
  ])('reads %j as %d', (value, expected) => {
    expect(parseLoadHeader(value)).toBe(expected)
  })

  it.each([[undefined], [''], ['abc'], ['-0.1'], ['1.5'], ['NaN'], ['Infinity'], [['0.5']]])('refuses %j', (value) => {
    expect(parseLoadHeader(value)).toBeUndefined()
  })
})
