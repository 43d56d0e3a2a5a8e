/**
 * The CloudEvents HTTP protocol binding conformance scenarios (cloudevents/conformance,
 * features/http-protocol-binding.feature), read from ../shared/conformance beside the repository
 * and run through decodeHttpEvents. The Gherkin is read by the small reader below (Feature,
 * Background, Scenario and Scenario Outline with Examples, steps with doc strings and tables);
 * a step it has no implementation for fails the scenario, so every step of every scenario runs.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { decodeHttpEvents, type DecodedHttpEvents } from '../src/codec/index.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const featurePath = join(repoRoot, '../shared/conformance/cloudevents-http/http-protocol-binding.feature')

interface Step {
  keyword: string
  text: string
  docString?: string
  table?: string[][]
}

interface Scenario {
  name: string
  steps: Step[]
}

interface Feature {
  name: string
  background: Step[]
  scenarios: Scenario[]
}

const STEP_KEYWORD = /^(Given|When|Then|And|But|\*)\s+(.*)$/

function tableRow(line: string): string[] {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim())
}

/** Reads the Gherkin subset the conformance features use; outlines are expanded per Examples row. */
function readFeature(source: string): Feature {
  const lines = source.split(/\r?\n/)
  const feature: Feature = { name: '', background: [], scenarios: [] }
  let steps: Step[] | undefined
  let outline: { name: string; steps: Step[]; examples: string[][] } | undefined
  const finishOutline = (): void => {
    if (outline === undefined) return
    const [header, ...rows] = outline.examples
    if (header === undefined || rows.length === 0) throw new Error(`Scenario Outline "${outline.name}" has no Examples rows`)
    for (const row of rows) {
      const fill = (text: string): string => text.replace(/<([^<>]+)>/g, (whole, key: string) => {
        const column = header.indexOf(key)
        return column < 0 ? whole : (row[column] ?? '')
      })
      feature.scenarios.push({
        name: fill(outline.name),
        steps: outline.steps.map((s) => ({
          keyword: s.keyword,
          text: fill(s.text),
          ...(s.docString === undefined ? {} : { docString: fill(s.docString) }),
          ...(s.table === undefined ? {} : { table: s.table.map((r) => r.map(fill)) }),
        })),
      })
    }
    outline = undefined
  }
  let inExamples = false
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('@')) continue
    if (trimmed.startsWith('"""')) {
      // A doc string: lines up to the closing """, less the opening delimiter's indentation.
      const indent = line.indexOf('"""')
      const body: string[] = []
      for (i++; i < lines.length && !(lines[i] as string).trim().startsWith('"""'); i++) {
        const l = lines[i] as string
        body.push(l.slice(Math.min(indent, l.length - l.trimStart().length)))
      }
      const last = steps?.at(-1)
      if (last === undefined) throw new Error(`doc string at line ${i} follows no step`)
      last.docString = body.join('\n')
      continue
    }
    if (trimmed.startsWith('|')) {
      if (inExamples && outline !== undefined) outline.examples.push(tableRow(trimmed))
      else {
        const last = steps?.at(-1)
        if (last === undefined) throw new Error(`table at line ${i + 1} follows no step`)
        ;(last.table ??= []).push(tableRow(trimmed))
      }
      continue
    }
    const keyword = /^(Feature|Background|Scenario Outline|Scenario Template|Scenario|Example|Examples|Scenarios):\s*(.*)$/.exec(trimmed)
    if (keyword !== null) {
      const [, kind, name = ''] = keyword
      inExamples = kind === 'Examples' || kind === 'Scenarios'
      if (inExamples) continue
      finishOutline()
      if (kind === 'Feature') feature.name = name
      else if (kind === 'Background') steps = feature.background
      else if (kind === 'Scenario Outline' || kind === 'Scenario Template') {
        outline = { name, steps: [], examples: [] }
        steps = outline.steps
      } else {
        const scenario: Scenario = { name, steps: [] }
        feature.scenarios.push(scenario)
        steps = scenario.steps
      }
      continue
    }
    const step = STEP_KEYWORD.exec(trimmed)
    if (step !== null && steps !== undefined && !inExamples) {
      steps.push({ keyword: step[1] as string, text: step[2] as string })
      continue
    }
    // Free text under Feature: (its description) before the first Background or Scenario.
    if (steps === undefined) continue
    throw new Error(`unreadable Gherkin at line ${i + 1}: ${trimmed}`)
  }
  finishOutline()
  return feature
}

/** An HTTP/1.1 message as text: start line, headers, blank line, body. */
function parseHttpMessage(text: string): { headers: Record<string, string | string[]>; body: Uint8Array } {
  const blank = text.indexOf('\n\n')
  const head = blank < 0 ? text : text.slice(0, blank)
  const body = blank < 0 ? '' : text.slice(blank + 2)
  const [, ...headerLines] = head.split('\n')
  const headers: Record<string, string | string[]> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    if (colon < 0) throw new Error(`not a header line: ${line}`)
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  return { headers, body: new TextEncoder().encode(body) }
}

interface World {
  request?: { headers: Record<string, string | string[]>; body: Uint8Array }
  decoded?: DecodedHttpEvents
}

/** Step implementations, matched on the step text. */
const STEPS: Array<[RegExp, (world: World, step: Step) => void]> = [
  [/^HTTP Protocol Binding is supported$/, () => {}],
  [/^an HTTP request$/, (world, step) => {
    expect(step.docString, 'the request is a doc string').toBeDefined()
    world.request = parseHttpMessage(step.docString as string)
  }],
  [/^parsed as HTTP request$/, (world) => {
    expect(world.request).toBeDefined()
    world.decoded = decodeHttpEvents(world.request as NonNullable<World['request']>)
  }],
  [/^the attributes are:$/, (world, step) => {
    const [header, ...rows] = step.table ?? []
    expect(header).toEqual(['key', 'value'])
    expect(rows.length).toBeGreaterThan(0)
    expect(world.decoded?.events.length).toBe(1)
    const event = world.decoded?.events[0] as unknown as Record<string, unknown>
    for (const [key, value] of rows as Array<[string, string]>) expect(event[key], key).toBe(value)
  }],
  [/^the data is equal to the following JSON:$/, (world, step) => {
    const event = world.decoded?.events[0] as unknown as Record<string, unknown>
    expect(event.data).toEqual(JSON.parse(step.docString as string))
  }],
]

function runStep(world: World, step: Step): void {
  const match = STEPS.find(([pattern]) => pattern.test(step.text))
  if (match === undefined) throw new Error(`no implementation for the step "${step.keyword} ${step.text}"`)
  match[1](world, step)
}

const feature = readFeature(readFileSync(featurePath, 'utf8'))

describe(`CloudEvents conformance: ${feature.name}`, () => {
  test('the feature file reads as 4 scenarios (2 outlines × 2 examples), each with steps', () => {
    expect(feature.background.length).toBe(1)
    expect(feature.scenarios.map((s) => s.name)).toEqual([
      'Binary content mode (application/json)',
      'Binary content mode (application/json; charset=utf-8)',
      'Structured content mode (application/cloudevents+json)',
      'Structured content mode (application/cloudevents+json; charset=utf-8)',
    ])
    for (const scenario of feature.scenarios) expect(scenario.steps.map((s) => s.keyword)).toEqual(['Given', 'When', 'Then', 'And'])
  })

  for (const scenario of feature.scenarios) {
    test(scenario.name, () => {
      const world: World = {}
      for (const step of [...feature.background, ...scenario.steps]) runStep(world, step)
      expect(world.decoded?.mode).toBe(scenario.name.startsWith('Binary') ? 'binary' : 'structured')
    })
  }
})

describe('the Gherkin reader', () => {
  test('expands an outline per Examples row, in names, doc strings and tables, and keeps plain scenarios', () => {
    const read = readFeature([
      'Feature: F', '  Scenario Outline: O <x>', '    Given a "<x>"', '      """', '      body <x>', '        indented', '      """',
      '    Then t', '      | k | <x> |', '    Examples:', '      | x |', '      | 1 |', '      | 2 |', '  Scenario: Plain', '    When w',
    ].join('\n'))
    expect(read.scenarios).toEqual([
      { name: 'O 1', steps: [{ keyword: 'Given', text: 'a "1"', docString: 'body 1\n  indented' }, { keyword: 'Then', text: 't', table: [['k', '1']] }] },
      { name: 'O 2', steps: [{ keyword: 'Given', text: 'a "2"', docString: 'body 2\n  indented' }, { keyword: 'Then', text: 't', table: [['k', '2']] }] },
      { name: 'Plain', steps: [{ keyword: 'When', text: 'w' }] },
    ])
  })

  test('a step with no implementation fails the scenario', () => {
    expect(() => runStep({}, { keyword: 'Then', text: 'something nobody wrote' })).toThrow(/no implementation/)
  })
})
