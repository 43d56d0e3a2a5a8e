import { test } from '@fast-check/vitest'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileCesql, evaluateCesql } from './cesql-expression.js'
import { CesqlParseError } from './cesql-parse-error.js'
import { MAX_EXPRESSION_LENGTH, MAX_NESTING } from './cesql-parser.js'
import { MAX_STRING_RESULT } from './cesql-functions.js'

const event = { specversion: '1.0', id: 'e1', source: 'http://shop/orders', type: 'order.created', priority: '3', big: 'x'.repeat(40_000), flag: true, count: 7 }

function parseError(expression: string): CesqlParseError {
  const c = compileCesql(expression)
  if (c.ok) throw new Error(`expected a parse error for ${expression}`)
  return c.error
}

describe('evaluateCesql', () => {
  it('returns the value and no error for a valid match', () => {
    expect(evaluateCesql("type LIKE 'order.%' AND INT(priority) > 2", event)).toEqual({ value: true, errors: [] })
  })

  it('reports a missing attribute with its name and position', () => {
    const r = evaluateCesql("type = 'order.created' AND customer = 'x'", event)
    expect(r.value).toBe(false)
    expect(r.error).toBe('missingAttribute')
    expect(r.errors).toEqual([{ kind: 'missingAttribute', message: 'the event has no attribute "customer"', position: 27 }])
  })

  it('gives a parse error as a value with kind parse, never a throw', () => {
    const r = evaluateCesql('type = ', event)
    expect(r).toMatchObject({ value: false, error: 'parse' })
    expect(r.errors[0]!.message).toContain('column 8')
  })

  it('reads Boolean and Integer extensions as such; data is not an attribute', () => {
    expect(evaluateCesql('flag AND count = 7', event).value).toBe(true)
    expect(evaluateCesql('EXISTS data', { ...event, data: { a: 1 } }).value).toBe(false)
  })

  it('evaluates AND, OR and XOR at one precedence level, left to right (spec §3.6)', () => {
    // (FALSE AND FALSE) OR TRUE is true; the right-associative FALSE AND (FALSE OR TRUE) would be false.
    expect(evaluateCesql('FALSE AND FALSE OR TRUE', event).value).toBe(true)
    expect(evaluateCesql('TRUE OR FALSE AND FALSE', event).value).toBe(false)
  })

  it('keeps Integer arithmetic in 32 bits: overflow is 0 with a math error', () => {
    expect(evaluateCesql('2147483647 + 1', event)).toMatchObject({ value: 0, error: 'math' })
    expect(evaluateCesql('-2147483648 - 1', event)).toMatchObject({ value: 0, error: 'math' })
    expect(evaluateCesql('65536 * 65536', event)).toMatchObject({ value: 0, error: 'math' })
    expect(evaluateCesql('-2147483648 / -1', event)).toMatchObject({ value: 0, error: 'math' })
    expect(evaluateCesql('-2147483648', event)).toEqual({ value: -2147483648, errors: [] })
    expect(evaluateCesql('-7 % 3', event).value).toBe(-1)
    expect(evaluateCesql('-7 / 2', event).value).toBe(-3)
  })

  it('refuses integer literals outside 32 bits at parse time', () => {
    expect(parseError('2147483648').message).toContain('does not fit in a 32-bit integer')
    expect(compileCesql('-2147483648').ok).toBe(true)
  })

  it('casts: an Integer is not implicitly a Boolean, but BOOL() converts it', () => {
    expect(evaluateCesql('NOT 10', event)).toMatchObject({ value: true, error: 'cast' })
    expect(evaluateCesql('BOOL(10)', event)).toEqual({ value: true, errors: [] })
    expect(evaluateCesql("'abc' = 1", event)).toMatchObject({ value: false, error: 'cast' })
    expect(evaluateCesql("1 IN ('x', 1)", event)).toMatchObject({ value: true, error: 'cast' })
    expect(evaluateCesql("IS_INT('12') AND NOT IS_INT('1x') AND IS_BOOL('False')", event).value).toBe(true)
  })

  it('counts characters as code points in string functions', () => {
    expect(evaluateCesql("LENGTH('a😀b')", event).value).toBe(3)
    expect(evaluateCesql("SUBSTRING('a😀b', 2, 1)", event).value).toBe('😀')
    expect(evaluateCesql("TRIM('\u00a0\u2003 x \u3000')", event).value).toBe('x')
  })

  it('bounds the strings functions build', () => {
    const r = evaluateCesql('CONCAT(big, big)', event)
    expect(r).toMatchObject({ value: '', error: 'functionEvaluation' })
    expect(2 * event.big.length).toBeGreaterThan(MAX_STRING_RESULT)
  })

  it('lists calls no built-in can dispatch, with their position', () => {
    const c = compileCesql("type = 'x' OR FOO(1) OR LEFT('a')")
    expect(c.ok && c.expression.unknownFunctions).toEqual([{ name: 'FOO', arity: 1, position: 14 }, { name: 'LEFT', arity: 1, position: 24 }])
    expect(evaluateCesql('FOO(1)', event)).toMatchObject({ value: false, error: 'missingFunction' })
  })

  it('matches only a Boolean true without errors', () => {
    const m = (e: string) => {
      const c = compileCesql(e)
      return c.ok && c.expression.matches(event)
    }
    expect(m("type = 'order.created'")).toBe(true)
    expect(m('1')).toBe(false)
    expect(m("'true'")).toBe(false)
    expect(m('NOT 10')).toBe(false)
    expect(m('TRUE OR missing')).toBe(true)
    expect(m('FALSE OR missing')).toBe(false)
  })
})

describe('compileCesql on hostile input', () => {
  it('names the column of a parse error', () => {
    const e = parseError("type = 'a' AND (source = 'b'")
    expect(e).toBeInstanceOf(CesqlParseError)
    expect(e.position).toBe(28)
    expect(e.message).toBe('expected ")" to close the "(" at column 16, got the end of the expression at column 29')
    expect(parseError('type LIKE source').message).toContain('the pattern of LIKE must be a string literal')
    expect(parseError("'abc").message).toContain('string literal is not closed')
    expect(parseError('a $ b').position).toBe(2)
  })

  it(`refuses expressions over ${MAX_EXPRESSION_LENGTH} characters`, () => {
    expect(parseError(`type = '${'x'.repeat(MAX_EXPRESSION_LENGTH)}'`).message).toContain(`at most ${MAX_EXPRESSION_LENGTH} are allowed`)
  })

  it(`refuses nesting deeper than ${MAX_NESTING} with a parse error, not a stack overflow`, () => {
    for (const deep of ['('.repeat(2000) + '1' + ')'.repeat(2000), 'NOT '.repeat(1000) + 'TRUE', '-'.repeat(4000) + '1', 'ABS('.repeat(800) + '1' + ')'.repeat(800)]) {
      expect(parseError(deep.slice(0, MAX_EXPRESSION_LENGTH)).message).toContain(`nests more than ${MAX_NESTING} levels deep`)
    }
    expect(compileCesql('('.repeat(MAX_NESTING) + '1' + ')'.repeat(MAX_NESTING)).ok).toBe(true)
  })

  it('evaluates a long flat chain without deep recursion', () => {
    const chain = Array.from({ length: 800 }, (_, i) => `count = ${i}`).join(' OR ')
    expect(chain.length).toBeLessThanOrEqual(MAX_EXPRESSION_LENGTH * 4)
    expect(evaluateCesql(chain.slice(0, chain.lastIndexOf(' OR ', MAX_EXPRESSION_LENGTH)), event).value).toBe(true)
  })

  const alphabet = fc.constantFrom(...'abcXYZ019 _\'"\\()%,=!<>+-*/'.split(''), 'AND ', 'OR ', 'NOT ', 'LIKE ', 'IN ', 'EXISTS ', 'TRUE', 'INT(', 'CONCAT(', 'SUBSTRING(', '😀')
  test.prop([fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: alphabet, maxLength: 80 }))], { numRuns: 2000 })(
    'any string compiles or gives a parse error, and evaluation never throws',
    (text) => {
      let c: ReturnType<typeof compileCesql> | undefined
      expect(() => (c = compileCesql(text))).not.toThrow()
      if (!c!.ok) {
        expect(c!.error).toBeInstanceOf(CesqlParseError)
        expect(c!.error.position).toBeGreaterThanOrEqual(0)
        expect(c!.error.position).toBeLessThanOrEqual(text.length)
        return
      }
      const r = c!.expression.evaluate(event)
      expect(['boolean', 'number', 'string']).toContain(typeof r.value)
      if (typeof r.value === 'number') expect(Number.isInteger(r.value) && r.value >= -2147483648 && r.value <= 2147483647).toBe(true)
      expect(r.errors.every((e) => e.kind !== 'parse' && e.kind !== 'generic')).toBe(true)
      expect(r.error).toBe(r.errors[0]?.kind)
    },
  )
})
