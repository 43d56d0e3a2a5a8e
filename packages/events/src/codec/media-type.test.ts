import { describe, expect, test } from 'vitest'
import { hasUtf8Charset, isJsonMediaType, parseMediaType } from './media-type.js'

describe('parseMediaType (RFC 9110 8.3.1)', () => {
  test('lowercases type, subtype and parameter names; keeps parameter values', () => {
    const mt = parseMediaType('Application/CloudEvents+JSON; Charset=UTF-8')
    expect(mt?.essence).toBe('application/cloudevents+json')
    expect(mt?.parameters.get('charset')).toBe('UTF-8')
  })

  test('reads quoted-string values with escapes, OWS around ";" and empty parameters', () => {
    const mt = parseMediaType('text/plain ;  a="x; \\"y\\"" ;; b=c ;')
    expect(mt?.essence).toBe('text/plain')
    expect([...(mt?.parameters ?? [])]).toEqual([['a', 'x; "y"'], ['b', 'c']])
  })

  test('the first of a repeated parameter wins', () => {
    expect(parseMediaType('text/plain; charset=utf-8; charset=latin1')?.parameters.get('charset')).toBe('utf-8')
  })

  test.each(['xyz', '', 'text/', '/plain', 'text/plain; =x', 'text/plain; a', 'text/plain; a="open', 'te xt/plain', 'text/plain; a=b c', 'text/pl@in'])(
    'refuses %j',
    (text) => {
      expect(parseMediaType(text)).toBeUndefined()
    },
  )

  test('JSON: application/json, any +json suffix, text/json', () => {
    for (const text of ['application/json', 'application/cloudevents+json', 'text/json', 'application/vnd.x+json; v=1']) {
      expect(isJsonMediaType(parseMediaType(text) as NonNullable<ReturnType<typeof parseMediaType>>), text).toBe(true)
    }
    expect(isJsonMediaType(parseMediaType('application/jsonx') as NonNullable<ReturnType<typeof parseMediaType>>)).toBe(false)
  })

  test('UTF-8 charsets: absent, utf-8 in any case, quoted, us-ascii; not others', () => {
    const utf8 = (text: string): boolean => hasUtf8Charset(parseMediaType(text) as NonNullable<ReturnType<typeof parseMediaType>>)
    expect([utf8('a/b'), utf8('a/b; charset=UTF-8'), utf8('a/b; charset="utf-8"'), utf8('a/b; charset=us-ascii'), utf8('a/b; charset=utf-16')]).toEqual([true, true, true, true, false])
  })
})
