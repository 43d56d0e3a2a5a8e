import { describe, expect, it } from 'vitest'
import { ErrorCodes, isMeshletError, MeshletError } from '../errors.js'
import { deadlineExceeded, MAX_INBOUND_DEADLINE_MS, parseDeadlineHeader } from './call-scope.js'

const NOW = 1_700_000_000_000

describe('parseDeadlineHeader', () => {
  it('returns Infinity when the header is absent', () => {
    expect(parseDeadlineHeader(undefined, NOW)).toBe(Infinity)
  })

  it('returns a valid absolute deadline as is', () => {
    expect(parseDeadlineHeader(String(NOW + 1500), NOW)).toBe(NOW + 1500)
    // A deadline in the past still parses; deciding it is late is the caller's job.
    expect(parseDeadlineHeader(String(NOW - 10), NOW)).toBe(NOW - 10)
    expect(parseDeadlineHeader('0', NOW)).toBe(0)
  })

  it('uses the first value of a repeated header', () => {
    expect(parseDeadlineHeader([String(NOW + 5), String(NOW + 9)], NOW)).toBe(NOW + 5)
  })

  it('clamps a far deadline to now + MAX_INBOUND_DEADLINE_MS', () => {
    expect(parseDeadlineHeader(String(NOW + MAX_INBOUND_DEADLINE_MS + 1), NOW)).toBe(NOW + MAX_INBOUND_DEADLINE_MS)
    expect(parseDeadlineHeader('999999999999999', NOW)).toBe(NOW + MAX_INBOUND_DEADLINE_MS)
    expect(parseDeadlineHeader(String(NOW + MAX_INBOUND_DEADLINE_MS), NOW)).toBe(NOW + MAX_INBOUND_DEADLINE_MS)
  })

  it.each([
    ['letters', 'abc'],
    ['a negative number', '-1'],
    ['an exponent', '1e10'],
    ['a fraction', '1700000000000.5'],
    ['an empty string', ''],
    ['surrounding spaces', ' 1700000000000'],
    ['16 digits', '1234567890123456'],
    ['an array of garbage', ['abc']],
    ['an empty array', []],
  ])('refuses %s with MESHLET_ERR_BAD_HEADER', (_what, value) => {
    const result = parseDeadlineHeader(value, NOW)
    expect(result).toBeInstanceOf(MeshletError)
    expect(isMeshletError(result, ErrorCodes.BAD_HEADER)).toBe(true)
    expect((result as MeshletError).message).toContain('meshlet-deadline')
  })

  it('truncates a huge value in the error message', () => {
    const huge = '9'.repeat(10 * 1024)
    const result = parseDeadlineHeader(`x${huge}`, NOW) as MeshletError
    expect(isMeshletError(result, ErrorCodes.BAD_HEADER)).toBe(true)
    expect(result.message.length).toBeLessThan(300)
    expect(result.message).toContain(`"x${'9'.repeat(39)}…"`)
  })

  it('names the bad value in the error message', () => {
    expect((parseDeadlineHeader('abc', NOW) as MeshletError).message).toContain('got "abc"')
  })
})

describe('deadlineExceeded', () => {
  it('says whether the call was sent and how late it is', () => {
    const notSent = deadlineExceeded('payments', Date.now() - 50, 1, false)
    expect(notSent.code).toBe(ErrorCodes.DEADLINE)
    expect(notSent.message).toContain('was not sent')
    expect(notSent.details).toMatchObject({ service: 'payments', attempt: 1, sent: false })
    const sent = deadlineExceeded('payments', Date.now() - 50, 2, true)
    expect(sent.message).toContain('ran past its deadline on attempt 2')
  })
})
