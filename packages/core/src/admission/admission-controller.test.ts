import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { validateMeshOptions } from '../config/mesh-options.js'
import { AdmissionController, type AdmissionWaiter, type Refusal } from './admission-controller.js'
import { InboundGate } from '../server/inbound-gate.js'
import type { AdmissionOptionsInput } from './admission-options.js'

const NOW = 1_700_000_000_000

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
})
afterEach(() => {
  vi.useRealTimers()
})

function controller(admission: AdmissionOptionsInput, clock = () => Date.now()): AdmissionController {
  const o = validateMeshOptions({ service: 'orders', admission })
  return new AdmissionController('orders', o.admission!, new MeshMetrics(), clock)
}

interface Outcome {
  started?: boolean
  permit?: boolean
  refusal?: Refusal
}

function ask(c: AdmissionController, path = '/orders', deadline = Infinity, caller?: string): { outcome: Outcome; entry: ReturnType<AdmissionController['acquire']> } {
  const outcome: Outcome = {}
  const w: AdmissionWaiter = {
    start: (permit) => Object.assign(outcome, { started: true, permit }),
    refuse: (refusal) => Object.assign(outcome, { refusal }),
  }
  const entry = c.acquire(path, caller === undefined ? undefined : { headers: {}, remoteAddress: caller }, deadline, w)
  return { outcome, entry }
}

describe('AdmissionController', () => {
  it('runs up to the limit, queues the next ones, refuses the rest with 503 + rejected MESHLET_ERR_OVERLOADED', () => {
    const c = controller({ concurrency: { limit: 2, queue: 1 } })
    expect(ask(c).outcome).toEqual({ started: true, permit: true })
    expect(ask(c).outcome).toEqual({ started: true, permit: true })
    const queued = ask(c)
    expect(queued.entry).toBeDefined()
    expect(queued.outcome).toEqual({})
    const refused = ask(c).outcome.refusal!
    expect(refused).toMatchObject({ status: 503, rejected: true, reason: 'concurrency' })
    expect(isMeshletError(refused.error, ErrorCodes.OVERLOADED)).toBe(true)
    expect(refused.error.message).toContain('2 running, 1 waiting')
    c.release(5)
    expect(queued.outcome).toEqual({ started: true, permit: true })
    expect(c.snapshot()).toMatchObject({ enabled: true, limit: 2, inflight: 2, queued: 0, queueLimit: 1, rejected: { concurrency: 1 } })
  })

  it('refuses from the queue: 503 after the queue timeout, 504 at the request deadline, 503 draining', () => {
    const c = controller({ concurrency: { limit: 1, queue: 5, queueTimeout: '100ms' } })
    ask(c)
    const timedOut = ask(c)
    const late = ask(c, '/x', NOW + 30)
    const drained = ask(c)
    vi.advanceTimersByTime(30)
    expect(late.outcome.refusal).toMatchObject({ status: 504, rejected: false, reason: 'deadline' })
    expect(isMeshletError(late.outcome.refusal!.error, ErrorCodes.DEADLINE)).toBe(true)
    c.drain()
    expect(drained.outcome.refusal).toMatchObject({ status: 503, rejected: true, reason: 'draining' })
    expect(timedOut.outcome.refusal).toMatchObject({ status: 503, rejected: true, reason: 'draining' })
    const again = ask(c)
    vi.advanceTimersByTime(100)
    expect(again.outcome.refusal).toMatchObject({ status: 503, rejected: true, reason: 'queue_timeout' })
    expect(c.snapshot().rejected).toEqual({ deadline: 1, draining: 2, queue_timeout: 1 })
  })

  it('a cancelled queued request is neither run nor counted as a rejection', () => {
    const c = controller({ concurrency: { limit: 1, queue: 5 } })
    ask(c)
    const q = ask(c)
    c.cancel(q.entry!)
    c.release(1)
    expect(q.outcome).toEqual({})
    expect(c.snapshot()).toMatchObject({ inflight: 0, queued: 0, rejected: {} })
  })

  it('rate limits the server with 429, a Retry-After in whole seconds and the rejected flag', () => {
    let t = 0
    const c = controller({ rateLimit: { rps: 2, burst: 2 } }, () => t)
    expect(ask(c).outcome.started).toBe(true)
    expect(ask(c).outcome.started).toBe(true)
    const r = ask(c).outcome.refusal!
    expect(r).toMatchObject({ status: 429, rejected: true, reason: 'rate_limit', retryAfter: 1 })
    expect(isMeshletError(r.error, ErrorCodes.RATE_LIMITED)).toBe(true)
    t += 500
    expect(ask(c).outcome.started).toBe(true)
  })

  it('rate limits each caller on its own, by client address unless callerKey says otherwise', () => {
    let t = 0
    const c = controller({ rateLimit: { perCaller: { rps: 1, burst: 1 } } }, () => t)
    expect(c.wantsCaller).toBe(true)
    expect(ask(c, '/', Infinity, '10.0.0.1').outcome.started).toBe(true)
    expect(ask(c, '/', Infinity, '10.0.0.1').outcome.refusal).toMatchObject({ status: 429, reason: 'rate_limit_caller' })
    expect(ask(c, '/', Infinity, '10.0.0.2').outcome.started).toBe(true)
    t += 1000
    expect(ask(c, '/', Infinity, '10.0.0.1').outcome.started).toBe(true)

    const byTenant = controller({ rateLimit: { perCaller: { rps: 1 }, callerKey: (caller) => (caller.remoteAddress === '10.0.0.9' ? undefined : 'everyone') } }, () => t)
    expect(ask(byTenant, '/', Infinity, '10.0.0.1').outcome.started).toBe(true)
    expect(ask(byTenant, '/', Infinity, '10.0.0.2').outcome.refusal?.reason).toBe('rate_limit_caller')
    // No key: only the server-wide bucket (none here) applies.
    expect(ask(byTenant, '/', Infinity, '10.0.0.9').outcome.started).toBe(true)
  })

  it('lets priority paths through without a permit, a token or a queue place', () => {
    const c = controller({ concurrency: { limit: 1, queue: 0 }, rateLimit: { rps: 1, burst: 1 } })
    ask(c)
    for (const p of ['/healthz', '/readyz', '/healthz/live', '/healthz?verbose=1']) expect(ask(c, p).outcome).toEqual({ started: true, permit: false })
    expect(ask(c, '/healthzz').outcome.refusal).toBeDefined()
    const custom = controller({ concurrency: { limit: 1, queue: 0 }, priorityPaths: ['/admin/'] })
    ask(custom)
    expect(ask(custom, '/admin/flags').outcome.started).toBe(true)
    expect(ask(custom, '/healthz').outcome.refusal).toBeDefined()
  })

  it('grows the adaptive limit with fast answers and the queue drains into it', () => {
    let t = 0
    const c = controller({ concurrency: { limit: 2, queue: 50 }, adaptive: { window: '100ms', eventLoopDelay: 0 } }, () => t)
    const all = Array.from({ length: 40 }, () => ask(c))
    for (let i = 0; i < 200 && c.snapshot().queued > 0; i++) {
      t += 50
      c.release(10)
      ask(c)
    }
    expect(c.snapshot().limit).toBeGreaterThan(2)
    expect(all.every((a) => a.outcome.started || a.entry !== undefined)).toBe(true)
    c.close()
  })
})

describe('InboundGate without admission control', () => {
  it('reports admission as off and still counts drain and deadline refusals by reason', () => {
    const gate = new InboundGate('orders', new MeshMetrics())
    gate.admit('junk')
    gate.admit(String(NOW - 1))
    gate.stopAccepting()
    gate.admit(undefined)
    expect(gate.admissionSnapshot()).toEqual({ enabled: false, limit: null, adaptive: false, inflight: 0, queued: 0, queueLimit: 0, overloaded: false, eventLoopDelayMs: 0, rejected: { bad_header: 1, deadline: 1, draining: 1 } })
    expect(gate.loadReport()).toBe('0.00; inflight=0')
    gate.close()
  })

  it('with admission control, the load report carries the queue and the occupancy', () => {
    const c = controller({ concurrency: { limit: 2, queue: 2 } })
    const gate = new InboundGate('orders', new MeshMetrics(), c)
    for (let i = 0; i < 3; i++) ask(c)
    gate.enter()
    gate.enter()
    expect(gate.loadReport()).toBe('1.00; inflight=2; queue=1')
    c.release(1)
    gate.leave()
    expect(gate.loadReport()).toBe('1.00; inflight=1; queue=0')
    c.release(1)
    gate.leave()
    expect(gate.loadReport()).toBe('0.50; inflight=0; queue=0')
    gate.close()
  })
})
