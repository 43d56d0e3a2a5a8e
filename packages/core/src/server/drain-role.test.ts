import { describe, expect, it, vi } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { RejectionCounter } from '../admission/rejection-counter.js'
import { ErrorCodes } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { drainRole } from './drain-role.js'
import type { CallResumer } from './server-role.js'

const stack = {} as CallResumer

describe('drain role', () => {
  it('passes every call while the state accepts, changing nothing on it', () => {
    const rejections = new RejectionCounter(new MeshMetrics())
    const role = drainRole({ accepting: true }, rejections, 'orders')
    const call = new FakeCall()
    expect(role.arrive(call, stack)).toBeUndefined()
    expect(call.deadline).toBe(Infinity)
    expect(rejections.snapshot()).toEqual({})
  })

  it('refuses 503 DRAINING, rejected and retryable, once the state stops accepting, and counts it', () => {
    const state = { accepting: true }
    const metrics = new MeshMetrics()
    const add = vi.spyOn(metrics.admissionRejected, 'add')
    const role = drainRole(state, new RejectionCounter(metrics), 'orders')
    state.accepting = false
    const refusal = role.arrive(new FakeCall(), stack)
    expect(refusal).toMatchObject({ ok: false, status: 503, rejected: true, reason: 'draining', error: { code: ErrorCodes.DRAINING, retryable: true, rejected: true } })
    expect((refusal as { error: Error }).error.message).toContain('"orders" is shutting down')
    expect(add).toHaveBeenCalledWith(1, { 'meshlet.rejection.reason': 'draining' })
  })
})
