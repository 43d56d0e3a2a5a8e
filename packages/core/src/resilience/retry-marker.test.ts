import { describe, expect, it } from 'vitest'
import { isRetriedCall } from './retry-marker.js'

describe('isRetriedCall', () => {
  it('reads meshlet-attempt ≥ 2 and grpc-previous-rpc-attempts ≥ 1 as a retry', () => {
    expect(isRetriedCall('2', undefined)).toBe(true)
    expect(isRetriedCall(['3'], undefined)).toBe(true)
    expect(isRetriedCall(undefined, '1')).toBe(true)
  })

  it('reads first attempts, absent markers and malformed values as not a retry', () => {
    for (const v of [undefined, '1', '0', '', '-2', '2.5', 'abc', '99999999', ' 2']) expect(isRetriedCall(v, undefined), String(v)).toBe(false)
    for (const v of [undefined, '0', '', '-1', 'x', '1e3']) expect(isRetriedCall(undefined, v), String(v)).toBe(false)
  })
})
