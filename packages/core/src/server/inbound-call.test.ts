import { describe, expect, it } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { callScope } from '../deadline/call-scope.js'
import { ErrorCodes, isMeshletError } from '../errors.js'

describe('InboundCall', () => {
  it('makes its signal on first use and aborts it with MESHLET_ERR_CANCELLED when cancelled', () => {
    const call = new FakeCall()
    const signal = call.signal
    expect(call.signal).toBe(signal)
    expect(signal.aborted).toBe(false)
    call.cancel()
    call.cancel()
    expect(signal.aborted).toBe(true)
    expect(isMeshletError(signal.reason, ErrorCodes.CANCELLED)).toBe(true)
  })

  it('hands out an aborted signal when asked after it was cancelled', () => {
    const call = new FakeCall()
    call.cancel()
    expect(call.signal.aborted).toBe(true)
  })

  it('runs code with itself as the call scope, and only inside', () => {
    const call = new FakeCall()
    call.deadline = 1234
    let inside: unknown
    call.runInScope((c) => (inside = callScope.getStore() === c && callScope.getStore()?.deadline))
    expect(inside).toBe(1234)
    expect(callScope.getStore()).toBeUndefined()
  })
})
