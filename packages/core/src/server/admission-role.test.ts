import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { AdmissionController } from '../admission/admission-controller.js'
import type { AdmissionOptionsInput } from '../admission/admission-options.js'
import type { Refusal } from '../admission/refusal.js'
import { validateMeshOptions } from '../config/mesh-options.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { admissionRole } from './admission-role.js'
import { CallPhase, type InboundCall } from './inbound-call.js'
import { DEFER, type CallResumer } from './server-role.js'

const NOW = 1_700_000_000_000
let now = 0

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
  now = 0
})
afterEach(() => {
  vi.useRealTimers()
})

function setup(admission: AdmissionOptionsInput) {
  const o = validateMeshOptions({ service: 'orders', admission })
  const controller = new AdmissionController('orders', o.admission!, new MeshMetrics(), () => now)
  const release = vi.spyOn(controller, 'release')
  const resumed: InboundCall[] = []
  const refused: [InboundCall, Refusal][] = []
  const stack: CallResumer = { resume: (c) => void resumed.push(c), refuse: (c, r) => void refused.push([c, r]) }
  const role = admissionRole(controller)
  /** A call arriving at this role, as the stack would have it. */
  const arrive = (call = new FakeCall()) => {
    call.phase = CallPhase.Arriving
    return { call, verdict: role.arrive(call, stack) }
  }
  return { controller, release, role, arrive, resumed, refused }
}

describe('admission role', () => {
  it('passes a call with a permit and returns it when the call ends, with its run time by the clock', () => {
    const { arrive, role, release, controller } = setup({ concurrency: { limit: 2 } })
    now = 100
    const { call, verdict } = arrive()
    expect(verdict).toBeUndefined()
    expect(call.permit).toBe(true)
    expect(controller.snapshot().inflight).toBe(1)
    now = 350
    role.end!(call, true)
    role.end!(call, true)
    expect(release.mock.calls).toEqual([[250]])
    expect(controller.snapshot().inflight).toBe(0)
  })

  it('passes a priority path with no permit, and returns nothing for it', () => {
    const { arrive, role, release } = setup({ concurrency: { limit: 1, queue: 0 } })
    arrive()
    const { call, verdict } = arrive(new FakeCall({ path: '/healthz' }))
    expect(verdict).toBeUndefined()
    expect(call.permit).toBe(false)
    role.end!(call, true)
    expect(release).not.toHaveBeenCalled()
  })

  it("samples a queued call's run time from its grant, not the time it waited (the adaptive limit's latency)", () => {
    const { arrive, role, release, resumed } = setup({ concurrency: { limit: 1, queue: 1, queueTimeout: '10s' }, adaptive: { minLimit: 1, maxLimit: 1 } })
    const first = arrive().call
    const { call: queued, verdict } = arrive()
    expect(verdict).toBe(DEFER)
    expect(queued.queued).toBeDefined()
    now += 5000 // the first call runs long; the second waits all that time
    role.end!(first, true)
    expect(resumed).toEqual([queued])
    expect(queued.permit).toBe(true)
    now += 30
    role.end!(queued, true)
    expect(release.mock.calls).toEqual([[5000], [30]])
  })

  it('gives up the queue place of a call abandoned while it waited; it never gets a permit or a sample', () => {
    const { arrive, role, release, resumed, controller } = setup({ concurrency: { limit: 1, queue: 1 } })
    const first = arrive().call
    const { call: gone } = arrive()
    role.abandon!(gone)
    expect(gone.queued).toBeUndefined()
    expect(controller.snapshot().queued).toBe(0)
    role.end!(first, true)
    expect(resumed).toEqual([])
    expect(release.mock.calls).toHaveLength(1)
    expect(controller.snapshot()).toMatchObject({ inflight: 0, rejected: {} })
  })

  it('hands a refusal from the queue to the stack (504 when the deadline passes there)', async () => {
    const { arrive, refused } = setup({ concurrency: { limit: 1, queue: 1, queueTimeout: '10s' } })
    arrive()
    const late = new FakeCall()
    late.deadline = NOW + 50
    arrive(late)
    await vi.advanceTimersByTimeAsync(50)
    expect(refused).toHaveLength(1)
    expect(refused[0]![0]).toBe(late)
    expect(refused[0]![1]).toMatchObject({ status: 504, reason: 'deadline', rejected: false })
    expect(late.queued).toBeUndefined()
  })

  it('refuses at once beyond the queue and over a rate limit (429 with retryAfter), without deferring', () => {
    expect(setup({ concurrency: { limit: 1, queue: 0 } }).arrive().verdict).toBeUndefined()
    const full = setup({ concurrency: { limit: 1, queue: 0 } })
    full.arrive()
    expect(full.arrive().verdict).toMatchObject({ status: 503, rejected: true, reason: 'concurrency' })
    const limited = setup({ rateLimit: { rps: 1, burst: 1 } })
    expect(limited.arrive().verdict).toBeUndefined()
    expect(limited.arrive().verdict).toMatchObject({ status: 429, rejected: true, reason: 'rate_limit', retryAfter: 1 })
  })

  it('asks the transport for the caller only for a per-caller rate limit', () => {
    const plain = setup({ concurrency: { limit: 5 } })
    const call = new FakeCall({ remoteAddress: '10.0.0.1' })
    const caller = vi.spyOn(call, 'caller')
    plain.arrive(call)
    expect(caller).not.toHaveBeenCalled()
    const perCaller = setup({ rateLimit: { perCaller: { rps: 1, burst: 1 } } })
    expect(perCaller.arrive(new FakeCall({ remoteAddress: '10.0.0.1' })).verdict).toBeUndefined()
    expect(perCaller.arrive(new FakeCall({ remoteAddress: '10.0.0.2' })).verdict).toBeUndefined()
    expect(perCaller.arrive(new FakeCall({ remoteAddress: '10.0.0.1' })).verdict).toMatchObject({ status: 429, reason: 'rate_limit_caller' })
  })
})
