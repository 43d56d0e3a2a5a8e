import { describe, expect, it } from 'vitest'
import { compilePathRegex, type PathRegex } from './path-regex.js'

function compiled(source: string): PathRegex {
  const r = compilePathRegex(source)
  if (typeof r === 'string') throw new Error(r)
  return r
}

describe('compilePathRegex', () => {
  it('matches anywhere in the path, as RegExp.test does, unless anchored', () => {
    expect(compiled('/api/v[0-9]+').test('/x/api/v2/y')).toBe(true)
    expect(compiled('^/api/v[0-9]+$').test('/x/api/v2')).toBe(false)
    expect(compiled('^/users/[0-9]+/orders$').test('/users/42/orders')).toBe(true)
  })

  // On V8's backtracking engine each of these takes exponential time on the path below (2^64 steps
  // would never end, so the test would time out); RE2 answers in one linear pass.
  it.each(['^((a+))+$', '^(a|a)*$', '^(a|aa)+$', '^(a+)+b$', '^(.*a){20}$'])('accepts %s, which backtracking engines cannot run safely, and answers at once', (source) => {
    const hostile = '/' + 'a'.repeat(64) + '!'
    expect(compiled(source).test(hostile)).toBe(false)
  })

  it.each([
    ['(?=a)b', /no lookaround/],
    ['(?<!a)b', /not a valid RE2/],
    ['(a)\\1', /invalid escape sequence/],
    ['[', /missing closing ]/],
    ['a{1001}', /invalid repeat count/],
  ])('refuses %s with what is wrong', (source, message) => {
    const r = compilePathRegex(source)
    expect(typeof r).toBe('string')
    expect(r).toMatch(message)
  })

  it('refuses a pattern whose program is too large to run cheaply', () => {
    expect(compilePathRegex('(a{100}){1,10}(b{100}){1,10}')).toMatch(/compiles to a program of \d+ instructions/)
  })
})
