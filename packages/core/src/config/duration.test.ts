import { describe, expect, it } from 'vitest'
import { formatDuration, parseDuration } from './duration.js'

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1m', 60_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['1.5m', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['0ms', 0],
    ['0.5s', 500],
  ])('parses %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it('takes finite non-negative numbers as milliseconds', () => {
    expect(parseDuration(0)).toBe(0)
    expect(parseDuration(1500)).toBe(1500)
    expect(parseDuration(12.5)).toBe(12.5)
  })

  it.each([
    ['negative number', -1],
    ['NaN', Number.NaN],
    ['Infinity', Infinity],
    ['empty string', ''],
    ['unknown unit', '2x'],
    ['a word', 'banana'],
    ['a negative duration', '-2s'],
    ['a bare number string', '250'],
    ['a unit with no number', 'ms'],
    ['surrounding spaces', ' 2s '],
    ['spaces between parts', '1m 30s'],
    ['trailing junk', '2s!'],
    ['an exponent', '1e3ms'],
    ['a leading dot', '.5s'],
    ['upper-case unit', '2S'],
    ['a very long string', '1s'.repeat(5000)],
    ['an object', { ms: 5 }],
    ['an array', ['2s']],
    ['null', null],
    ['undefined', undefined],
    ['a boolean', true],
    ['a bigint', 10n],
  ])('refuses %s', (_what, value) => {
    expect(parseDuration(value)).toBeUndefined()
  })

  it('refuses text over 64 characters even when well formed', () => {
    const ok = '1ms'.repeat(21) // 63 characters
    expect(parseDuration(ok)).toBe(21)
    expect(parseDuration(`${ok}1s`)).toBeUndefined()
  })

  it('does not carry regex state from one call to the next', () => {
    expect(parseDuration('2x')).toBeUndefined()
    expect(parseDuration('3s')).toBe(3000)
    expect(parseDuration('1m3')).toBeUndefined()
    expect(parseDuration('1m')).toBe(60_000)
  })
})

describe('formatDuration', () => {
  it('writes whole seconds as seconds and the rest as milliseconds', () => {
    expect(formatDuration(2000)).toBe('2s')
    expect(formatDuration(1500)).toBe('1500ms')
    expect(formatDuration(250)).toBe('250ms')
    expect(formatDuration(0)).toBe('0ms')
    expect(formatDuration(Infinity)).toBe('none')
  })
})
