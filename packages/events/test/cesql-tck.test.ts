/**
 * The CloudEvents SQL TCK (cloudevents/spec cesql/cesql_tck, kept unchanged in
 * ../shared/conformance/cesql-tck beside the repository): every case of every file, through the
 * public API. A case with `error: parse` must fail to compile; every other case must compile, and
 * evaluating it must give `result` and, when the case names one, an error of that kind first.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { compileCesql } from '../src/index.js'

const TCK_DIR = fileURLToPath(new URL('../../../../shared/conformance/cesql-tck/', import.meta.url))

interface TckCase {
  name: string
  expression: string
  result?: boolean | number | string
  error?: string
  event?: Record<string, unknown>
  eventOverrides?: Record<string, unknown>
}

/** The event of a case without its own: valid, with the optional attributes set, and none of the TCK's extensions. */
const BASE_EVENT: Record<string, unknown> = {
  specversion: '1.0',
  id: 'tck-event-1',
  source: 'http://localhost/tck',
  type: 'dev.meshlet.tck',
  subject: 'tck',
  time: '2024-06-13T12:00:00Z',
  datacontenttype: 'application/json',
  dataschema: 'http://localhost/schema',
}

const files = readdirSync(TCK_DIR).filter((f) => f.endsWith('.yaml')).sort()
const suites = files.map((file) => {
  const text = readFileSync(TCK_DIR + file, 'utf8')
  const typed = parse(text) as { name: string; tests: TckCase[] }
  // An expression is text even where YAML would read a scalar (`expression: TRUE`, `expression: -10`): take it from the failsafe schema.
  const raw = parse(text, { schema: 'failsafe' }) as { tests: { expression: string }[] }
  return { file, name: typed.name, tests: typed.tests.map((t, i) => ({ ...t, expression: raw.tests[i]!.expression })) }
})

it('finds the 18 files of the TCK', () => {
  expect(files).toHaveLength(18)
  expect(suites.reduce((n, s) => n + s.tests.length, 0)).toBeGreaterThan(250)
})

for (const suite of suites) {
  describe(`${suite.file}: ${suite.name}`, () => {
    for (const tc of suite.tests) {
      it(`${tc.name}: ${tc.expression}`, () => {
        const compiled = compileCesql(tc.expression)
        if (tc.error === 'parse') {
          expect(compiled.ok).toBe(false)
          if (!compiled.ok) expect(compiled.error.position).toBeGreaterThanOrEqual(0)
          return
        }
        if (!compiled.ok) throw compiled.error
        const event = { ...(tc.event ?? BASE_EVENT), ...tc.eventOverrides }
        const r = compiled.expression.evaluate(event)
        expect(r.value).toStrictEqual(tc.result)
        expect(r.error).toBe(tc.error)
      })
    }
  })
}
