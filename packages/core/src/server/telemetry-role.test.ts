import { describe, expect, it } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import type { CallScope } from '../deadline/call-scope.js'
import type { CallResumer } from './server-role.js'
import { telemetryRole } from './telemetry-role.js'

const stack = {} as CallResumer

function counter() {
  const inflight = new Set<CallScope>()
  return { inflight, enter: (s: CallScope) => void inflight.add(s), leave: (s: CallScope) => void inflight.delete(s) }
}

describe('telemetry role', () => {
  it('counts the call in flight from arrival to end and records its duration by its clock, in seconds', () => {
    let now = 1000
    const c = counter()
    const role = telemetryRole(c, () => now)
    const call = new FakeCall()
    expect(role.arrive(call, stack)).toBeUndefined()
    expect(c.inflight.has(call)).toBe(true)
    now += 250
    role.end!(call, true)
    expect(c.inflight.size).toBe(0)
    expect(call.durations).toEqual([{ seconds: 0.25, complete: true }])
  })

  it('records a call whose client went away as incomplete', () => {
    let now = 0
    const role = telemetryRole(counter(), () => now)
    const call = new FakeCall()
    role.arrive(call, stack)
    now = 40
    role.end!(call, false)
    expect(call.durations).toEqual([{ seconds: 0.04, complete: false }])
  })
})
