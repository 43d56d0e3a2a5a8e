import { test } from '@fast-check/vitest'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LikePattern } from './like-pattern.js'

/** A reference matcher by dynamic programming over code points: obviously right, quadratic, for small inputs only. */
function reference(pattern: string, text: string): boolean {
  const p: { c: string; kind: 'lit' | 'one' | 'many' }[] = []
  const pc = Array.from(pattern)
  for (let i = 0; i < pc.length; i++) {
    if (pc[i] === '\\' && (pc[i + 1] === '%' || pc[i + 1] === '_')) p.push({ c: pc[++i]!, kind: 'lit' })
    else if (pc[i] === '%') p.push({ c: '', kind: 'many' })
    else if (pc[i] === '_') p.push({ c: '', kind: 'one' })
    else p.push({ c: pc[i]!, kind: 'lit' })
  }
  const t = Array.from(text)
  let row = new Array<boolean>(t.length + 1).fill(false)
  row[0] = true
  for (const tok of p) {
    const next = new Array<boolean>(t.length + 1).fill(false)
    for (let j = 0; j <= t.length; j++) {
      if (tok.kind === 'many') next[j] = row[j]! || (j > 0 && next[j - 1]!)
      else if (j > 0) next[j] = row[j - 1]! && (tok.kind === 'one' || t[j - 1] === tok.c)
    }
    row = next
  }
  return row[t.length]!
}

describe('LikePattern', () => {
  it('matches the spec examples: _b% takes ab, abc, abcd1 but not b, acd or aBc', () => {
    const p = new LikePattern('_b%')
    expect(['ab', 'abc', 'abcd1'].map((t) => p.matches(t))).toEqual([true, true, true])
    expect(['b', 'acd', 'aBc'].map((t) => p.matches(t))).toEqual([false, false, false])
  })

  it('treats \\% and \\_ as literals and any other backslash as itself', () => {
    expect(new LikePattern('abc\\%').matches('abc%')).toBe(true)
    expect(new LikePattern('abc\\%').matches('abcd')).toBe(false)
    expect(new LikePattern('a\\b').matches('a\\b')).toBe(true)
    expect(new LikePattern('a\\\\%').matches('a\\%')).toBe(true)
  })

  it('counts characters, not UTF-16 units: _ takes one emoji', () => {
    expect(new LikePattern('a_c').matches('a😀c')).toBe(true)
    expect(new LikePattern('a__c').matches('a😀c')).toBe(false)
  })

  it('handles segments longer than one 32-bit word', () => {
    const seg = 'x'.repeat(40) + '_' + 'y'.repeat(40)
    expect(new LikePattern(`%${seg}%`).matches(`zz${'x'.repeat(45)}Q${'y'.repeat(40)}zz`)).toBe(true)
    expect(new LikePattern(`%${seg}%`).matches(`zz${'x'.repeat(45)}Q${'y'.repeat(39)}zz`)).toBe(false)
  })

  it('runs in linear time on patterns that make backtracking matchers explode', () => {
    const text = 'a'.repeat(200_000)
    const t0 = performance.now()
    expect(new LikePattern(`%${'a%'.repeat(100)}b`).matches(text)).toBe(false)
    expect(new LikePattern(`%${'a'.repeat(1000)}b%`).matches(text)).toBe(false)
    expect(new LikePattern(`%${'_'.repeat(500)}b`).matches(text)).toBe(false)
    expect(performance.now() - t0).toBeLessThan(2000)
  })

  test.prop([fc.string({ unit: fc.constantFrom('a', 'b', '%', '_', '\\', '😀'), maxLength: 12 }), fc.string({ unit: fc.constantFrom('a', 'b', '%', '_', '\\', '😀'), maxLength: 16 })], { numRuns: 3000 })(
    'agrees with a reference matcher',
    (pattern, text) => {
      expect(new LikePattern(pattern).matches(text)).toBe(reference(pattern, text))
    },
  )
})
