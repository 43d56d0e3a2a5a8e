import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { describe, expect, test } from 'vitest'
import { decodeHeaderValue, encodeHeaderValue } from './header-encoding.js'

function refusal(run: () => unknown): { rule: unknown; message: string } {
  try {
    run()
  } catch (error) {
    expect(isMeshletError(error, ErrorCodes.EVENT_INVALID)).toBe(true)
    return { rule: (error as { details: { rule: unknown } }).details.rule, message: (error as Error).message }
  }
  throw new Error('expected a refusal')
}

describe('encodeHeaderValue (HTTP binding 3.1.3.2)', () => {
  test.each([
    ['simple', 'simple'],
    ['Euro \u20AC \u{1F600}', 'Euro%20%E2%82%AC%20%F0%9F%98%80'],
    ['space encoded', 'space%20encoded'],
    ['percent%encoded', 'percent%25encoded'],
    ['quote"encoded', 'quote%22encoded'],
    ['caf\u00e9', 'caf%C3%A9'],
    ['tab\there', 'tab%09here'],
    ['del\u007f', 'del%7F'],
    ["!#$&'()*+,/:;=?@[]~", "!#$&'()*+,/:;=?@[]~"],
  ])('%j → %s', (value, encoded) => {
    expect(encodeHeaderValue(value)).toBe(encoded)
  })
})

describe('decodeHeaderValue', () => {
  test('undoes percent-encoding, upper or lower case hex, and accepts needless encoding', () => {
    expect(decodeHeaderValue('ce-subject', 'Euro%20%e2%82%ac%20%F0%9F%98%80')).toBe('Euro \u20AC \u{1F600}')
    expect(decodeHeaderValue('ce-subject', '%41%42C')).toBe('ABC')
  })

  test('undoes a quoted-string first (older senders), then percent-decodes once', () => {
    expect(decodeHeaderValue('ce-subject', '"a \\"quoted\\" value"')).toBe('a "quoted" value')
    expect(decodeHeaderValue('ce-subject', '"100%25"')).toBe('100%')
    expect(decodeHeaderValue('ce-subject', '%2541')).toBe('%41')
  })

  test('accepts raw spaces (older senders did not encode them) and trims surrounding whitespace', () => {
    expect(decodeHeaderValue('ce-subject', '  hello world\t')).toBe('hello world')
  })

  test.each([
    ['%C0%A0', 'overlong encoding of U+0020'],
    ['%ED%A0%80', 'a UTF-16 surrogate'],
    ['%E2%82', 'a truncated sequence'],
    ['%FF', 'a byte that never starts UTF-8'],
  ])('refuses %s (%s) as invalid UTF-8', (raw) => {
    expect(refusal(() => decodeHeaderValue('ce-subject', raw)).rule).toBe('utf-8')
  })

  test.each(['%', '%4', '%G1', 'abc%zz'])('refuses the malformed escape %s', (raw) => {
    const { rule, message } = refusal(() => decodeHeaderValue('ce-subject', raw))
    expect(rule).toBe('percent-encoding')
    expect(message).toContain('%25')
  })

  test('refuses raw non-ASCII and control characters (latin1 bytes of invalid UTF-8 included)', () => {
    expect(refusal(() => decodeHeaderValue('ce-subject', 'caf\u00e9')).rule).toBe('header-encoding')
    expect(refusal(() => decodeHeaderValue('ce-subject', '\u00c3\u0028')).rule).toBe('header-encoding')
    expect(refusal(() => decodeHeaderValue('ce-subject', 'a\u0000b')).rule).toBe('header-encoding')
  })

  test('refuses a quoted-string that does not close at the end', () => {
    expect(refusal(() => decodeHeaderValue('ce-subject', '"open')).rule).toBe('quoted-string')
    expect(refusal(() => decodeHeaderValue('ce-subject', '"a" trailing')).rule).toBe('quoted-string')
  })

  test('a 64 KiB value of escapes decodes in linear time', () => {
    const raw = '%41'.repeat(22_000)
    const started = performance.now()
    expect(decodeHeaderValue('ce-subject', raw)).toBe('A'.repeat(22_000))
    expect(performance.now() - started).toBeLessThan(500)
  })
})
