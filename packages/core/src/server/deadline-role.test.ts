import { describe, expect, it } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { RejectionCounter } from '../admission/rejection-counter.js'
import { DEADLINE_HEADER, MAX_INBOUND_DEADLINE_MS } from '../deadline/call-scope.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { deadlineRole } from './deadline-role.js'
import type { CallResumer } from './server-role.js'

const NOW = 1_700_000_000_000
const stack = {} as CallResumer

function role(now = NOW) {
  const rejections = new RejectionCounter(new MeshMetrics())
  return { role: deadlineRole('orders', rejections, () => now), rejections }
}

function arrive(headers: Record<string, string | string[]>, transportDeadline?: number, now = NOW) {
  const r = role(now)
  const call = new FakeCall({ headers, ...(transportDeadline !== undefined ? { transportDeadline } : {}) })
  return { call, verdict: r.role.arrive(call, stack), rejections: r.rejections }
}

describe('deadline role', () => {
  it('leaves the deadline infinite with neither a header nor a transport deadline', () => {
    const { call, verdict } = arrive({})
    expect(verdict).toBeUndefined()
    expect(call.deadline).toBe(Infinity)
  })

  it('sets the header deadline, read against its clock', () => {
    expect(arrive({ [DEADLINE_HEADER]: String(NOW + 250) }).call.deadline).toBe(NOW + 250)
    // The same header, one second later by the injected clock, has passed.
    expect(arrive({ [DEADLINE_HEADER]: String(NOW + 250) }, undefined, NOW + 1000).verdict).toMatchObject({ status: 504 })
  })

  it('takes the earlier of the header and the transport deadline', () => {
    expect(arrive({ [DEADLINE_HEADER]: String(NOW + 5000) }, NOW + 100).call.deadline).toBe(NOW + 100)
    expect(arrive({ [DEADLINE_HEADER]: String(NOW + 100) }, NOW + 5000).call.deadline).toBe(NOW + 100)
    expect(arrive({}, NOW + 700).call.deadline).toBe(NOW + 700)
  })

  it('clamps a far deadline to a day ahead', () => {
    expect(arrive({ [DEADLINE_HEADER]: String(NOW + 10 * MAX_INBOUND_DEADLINE_MS) }).call.deadline).toBe(NOW + MAX_INBOUND_DEADLINE_MS)
  })

  it.each([['abc'], ['-1'], ['1e10'], ['12345678901234567890']])('refuses a malformed header %j with 400 BAD_HEADER, not rejected, and counts it', (header) => {
    const { call, verdict, rejections } = arrive({ [DEADLINE_HEADER]: header })
    expect(verdict).toMatchObject({ status: 400, rejected: false, reason: 'bad_header' })
    expect(isMeshletError((verdict as { error: unknown }).error, ErrorCodes.BAD_HEADER)).toBe(true)
    expect(call.deadline).toBe(Infinity)
    expect(rejections.snapshot()).toEqual({ bad_header: 1 })
  })

  it.each([
    ['already passed', NOW - 30],
    ['exactly now', NOW],
  ])('refuses a deadline that has %s with 504 DEADLINE, saying by how much', (_what, deadline) => {
    const { verdict, rejections } = arrive({ [DEADLINE_HEADER]: String(deadline) })
    expect(verdict).toMatchObject({ status: 504, rejected: false, reason: 'deadline' })
    expect((verdict as { error: Error }).error.message).toContain(`passed ${NOW - deadline}ms before "orders" received the request`)
    expect(rejections.snapshot()).toEqual({ deadline: 1 })
  })
})
