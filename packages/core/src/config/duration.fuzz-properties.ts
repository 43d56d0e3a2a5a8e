/** Properties of `parseDuration` and the `duration` schema: a number of milliseconds or a refusal, for any input. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { ConfigIssue } from '../errors.js'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { parseDuration } from './duration.js'
import * as s from './schema.js'

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
type Unit = keyof typeof UNIT_MS

/** One `<number><unit>` part, integer or decimal, as config writes it. */
const part = fc.record({
  whole: fc.nat({ max: 100_000 }).map(String),
  fraction: fc.option(fc.stringMatching(/^\d{1,4}$/), { nil: undefined }),
  unit: fc.constantFrom<Unit>('ms', 's', 'm', 'h'),
})
const parts = fc.array(part, { minLength: 1, maxLength: 6 })
const text = (ps: readonly { whole: string; fraction: string | undefined; unit: Unit }[]) => ps.map((p) => `${p.whole}${p.fraction === undefined ? '' : `.${p.fraction}`}${p.unit}`).join('')

/** Anything a config file or a caller could hand over, and strings that look almost like durations. */
export const durationLike = fc.oneof(
  fc.anything(),
  fc.string({ unit: fc.constantFrom(...'0123456789.mshd -+eE_'), maxLength: 80 }),
  parts.map(text),
  fc.double(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
)

export const durationSuite: FuzzSuite = {
  name: 'duration',
  regressions: new URL('./duration.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'parseDuration gives a finite non-negative number or undefined for any value, never throws',
      make: () => ({
        property: fc.property(durationLike, (v) => {
          const ms = parseDuration(v)
          assert.ok(ms === undefined || (Number.isFinite(ms) && ms >= 0), `got ${ms}`)
        }),
      }),
    },
    {
      name: 'a well-formed duration of at most 64 characters is the sum of its parts',
      make: () => ({
        property: fc.property(parts, (ps) => {
          const t = text(ps)
          fc.pre(t.length <= 64)
          const expected = ps.reduce((sum, p) => sum + Number(`${p.whole}${p.fraction === undefined ? '' : `.${p.fraction}`}`) * UNIT_MS[p.unit], 0)
          assert.equal(parseDuration(t), expected)
        }),
      }),
    },
    {
      name: 'a duration with any character other than digits, ".", m, s or h in it is refused',
      make: () => ({
        property: fc.property(parts, fc.nat(), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }), (ps, at, junk) => {
          fc.pre(!/[0-9.msh]/.test(junk))
          const t = text(ps)
          const i = at % (t.length + 1)
          assert.equal(parseDuration(t.slice(0, i) + junk + t.slice(i)), undefined)
        }),
      }),
    },
    {
      name: 'text over 64 characters is refused before any parsing, however well-formed',
      make: () => ({
        property: fc.property(fc.array(part, { minLength: 20, maxLength: 2000 }), (ps) => {
          const t = text(ps)
          fc.pre(t.length > 64)
          assert.equal(parseDuration(t), undefined)
        }),
      }),
    },
    {
      name: 'the duration schema returns milliseconds within its bounds, or undefined with one issue at the given path',
      make: () => ({
        property: fc.property(durationLike, fc.nat({ max: 86_400_000 }), fc.nat({ max: 86_400_000 }), (v, a, b) => {
          const [min, max] = a <= b ? [a, b] : [b, a]
          const issues: ConfigIssue[] = []
          const ms = s.duration({ min, max }).check(v, 'spec.timeout', issues)
          if (ms === undefined) {
            assert.equal(issues.length, 1)
            assert.equal(issues[0]!.path, 'spec.timeout')
            assert.ok(issues[0]!.message.length > 0)
          } else {
            assert.deepEqual(issues, [])
            assert.ok(ms >= min && ms <= max)
          }
        }),
      }),
    },
  ],
}
