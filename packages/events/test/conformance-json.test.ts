/**
 * The CloudEvents JSON format conformance data (cloudevents/conformance, format/json), read from
 * ../shared/conformance beside the repository. Every valid event and batch must decode to its
 * golden sample (FORMAT-README.md, written out below in code, as that README asks); every invalid
 * one must be refused with EVENT_INVALID naming the attribute and rule we expect for it.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { describe, expect, test } from 'vitest'
import {
  decodeHttpEvents, eventFromJson, parseJsonBatchText, parseJsonEventText, type DecodedEvent, type ExtensionTypes,
} from '../src/codec/index.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const dataDir = join(repoRoot, '../shared/conformance/cloudevents-json')

interface ConformanceTest {
  id: string
  testType?: string
  sampleId?: string
  event?: unknown
  batch?: unknown
  sampleExtensionAttributes?: boolean
  extensionConstraints?: boolean
}

interface ConformanceFile {
  testType: string
  tests: ConformanceTest[]
}

function load(name: string): ConformanceFile {
  return JSON.parse(readFileSync(join(dataDir, name), 'utf8')) as ConformanceFile
}

/** FORMAT-README.md "Sample extension attributes", unconstrained. */
const SAMPLE_EXTENSION_TYPES: ExtensionTypes = {
  extinteger: 'integer',
  extboolean: 'boolean',
  extstring: 'string',
  extbinary: 'binary',
  exttimestamp: 'timestamp',
  exturi: 'uri',
  exturiref: 'uri-reference',
}

type Golden = Record<string, unknown>

const minimal: Golden = { specversion: '1.0', id: 'minimal', type: 'io.cloudevents.test', source: 'https://cloudevents.io' }
const allCore: Golden = {
  ...minimal, id: 'allCore', datacontenttype: 'text/plain', dataschema: 'https://cloudevents.io/dataschema', subject: 'tests', time: '2018-04-05T17:31:00Z',
}
const allExtensionTypes: Golden = {
  ...minimal,
  id: 'allExtensionTypes',
  extinteger: 10,
  extboolean: true,
  extstring: 'text',
  extbinary: new Uint8Array([77, 97]),
  exttimestamp: '2023-03-31T15:12:00Z',
  exturi: 'https://cloudevents.io',
  exturiref: '//authority/path',
}

/** FORMAT-README.md "Golden sample events". */
const GOLDEN_EVENTS: Record<string, Golden> = {
  minimal,
  minimalWithTime: { ...minimal, id: 'minimalWithTime', time: '2018-04-05T17:31:00Z' },
  minimalWithRelativeSource: { ...minimal, id: 'minimalWithRelativeSource', source: '#fragment' },
  allCore,
  // FORMAT-README.md gives this sample the id "simpleData"; valid-events.json (the data, unchanged) sends "simpleTextData". The data wins.
  simpleTextData: { ...minimal, id: 'simpleTextData', datacontenttype: 'text/plain', data: 'Simple text' },
  allExtensionTypes,
}

/** FORMAT-README.md "Golden sample event batches". */
const GOLDEN_BATCHES: Record<string, Golden[]> = {
  empty: [],
  minimal: [minimal],
  minimal2: [minimal, minimal],
  minimalAndAllCore: [minimal, allCore],
  minimalAndAllExtensionTypes: [minimal, allExtensionTypes],
}

const TIMESTAMP_ATTRIBUTES = new Set(['time', 'exttimestamp'])

/** Equality as FORMAT-README.md defines it: timestamps compare as instants (to the millisecond). */
function expectEventToMatch(event: DecodedEvent, golden: Golden): void {
  const actual = event as unknown as Record<string, unknown>
  expect(Object.keys(actual).sort()).toEqual(Object.keys(golden).sort())
  for (const [name, value] of Object.entries(golden)) {
    if (TIMESTAMP_ATTRIBUTES.has(name)) expect(Date.parse(actual[name] as string), name).toBe(Date.parse(value as string))
    else expect(actual[name], name).toEqual(value)
  }
}

function optionsFor(test: ConformanceTest): { extensionTypes?: ExtensionTypes } {
  return test.sampleExtensionAttributes === true ? { extensionTypes: SAMPLE_EXTENSION_TYPES } : {}
}

/** Why each invalid case is refused: [attribute, rule, batch index]. A case missing here fails, so new upstream cases get a reason too. */
const EXPECTED_REFUSALS: Record<string, [string, string, number?]> = {
  invalidNoSpecVersion: ['specversion', 'required'],
  invalidNoId: ['id', 'required'],
  invalidNoType: ['type', 'required'],
  invalidNoSource: ['source', 'required'],
  invalidTimeGarbage: ['time', 'timestamp'],
  invalidTimeToMinute: ['time', 'timestamp'],
  invalidTimeOffsetX: ['time', 'timestamp'],
  invalidTimeOffsetOutOfRange: ['time', 'timestamp'],
  invalidTimeOffsetNonInteger: ['time', 'timestamp'],
  invalidTimeOffsetHourOnly: ['time', 'timestamp'],
  invalidEmptyId: ['id', 'non-empty'],
  invalidEmptyType: ['type', 'non-empty'],
  invalidEmptySource: ['source', 'non-empty'],
  invalidEmptySpecVersion: ['specversion', 'non-empty'],
  invalidUnknownSpecVersion: ['specversion', 'specversion'],
  invalidNonRfc2046DataContentType: ['datacontenttype', 'media-type'],
  invalidEmptyDataContentType: ['datacontenttype', 'non-empty'],
  invalidEmptyDataSchema: ['dataschema', 'non-empty'],
  invalidEmptySubject: ['subject', 'non-empty'],
  invalidNumericId: ['id', 'type'],
  invalidObjectId: ['id', 'type'],
  invalidCapitalizedExtension: ['MyExtension', 'name'],
  invalidPunctuatedExtension: ['my.extension', 'name'],
  // The name is refused before the value (1.5, not an Integer); the value rule alone is tested in json-format.test.ts.
  invalidNonIntegerExtensionValue: ['my.extension', 'name'],
  invalidBothDataAndDataBase64: ['data', 'exclusive'],
  invalidBatchMixedSpecVersions: ['specversion', 'specversion', 1],
  invalidBatchContainingInvalidCloudEvent: ['id', 'required', 0],
  invalidBatchContainingNonObject: ['event', 'object', 0],
}

function expectRefusal(run: () => unknown, id: string): void {
  const expected = EXPECTED_REFUSALS[id]
  expect(expected, `no expected refusal written down for ${id}`).toBeDefined()
  const [attribute, rule, index] = expected as [string, string, number?]
  let thrown: unknown
  try {
    run()
  } catch (error) {
    thrown = error
  }
  expect(isMeshletError(thrown, ErrorCodes.EVENT_INVALID), `${id} was not refused with EVENT_INVALID: ${String(thrown)}`).toBe(true)
  const details = (thrown as { details: Record<string, unknown> }).details
  expect(details).toEqual(index === undefined ? { attribute, rule } : { attribute, rule, index })
  expect((thrown as Error).message).toContain(attribute)
}

const files = ['valid-events.json', 'invalid-events.json', 'valid-batches.json', 'invalid-batches.json'].map((name) => ({ name, file: load(name) }))
const cases = files.flatMap(({ name, file }) => file.tests.map((test) => ({ file: name, type: test.testType ?? file.testType, test })))
const structured = { 'content-type': 'application/cloudevents+json' }
const batched = { 'content-type': 'application/cloudevents-batch+json' }

describe('CloudEvents JSON format conformance (cloudevents/conformance format/json)', () => {
  test('the data set is all there: 43 cases, each of a known type', () => {
    expect(cases.length).toBe(43)
    expect(new Set(cases.map((c) => c.type))).toEqual(new Set(['ValidSingleEvent', 'InvalidSingleEvent', 'ValidBatch', 'InvalidBatch']))
  })

  for (const { file, type, test: c } of cases) {
    const title = `${file} ${c.id} (${type})`
    const options = optionsFor(c)
    if (type === 'ValidSingleEvent') {
      test(`${title} decodes to the golden sample ${c.sampleId}`, () => {
        const golden = GOLDEN_EVENTS[c.sampleId as string] as Golden
        expect(golden).toBeDefined()
        expectEventToMatch(eventFromJson(c.event, options), golden)
        const text = JSON.stringify(c.event)
        expectEventToMatch(parseJsonEventText(text, options), golden)
        const decoded = decodeHttpEvents({ headers: structured, body: new TextEncoder().encode(text) }, options)
        expect(decoded.mode).toBe('structured')
        expectEventToMatch(decoded.events[0] as DecodedEvent, golden)
      })
    } else if (type === 'ValidBatch') {
      test(`${title} decodes to the golden batch ${c.sampleId}`, () => {
        const golden = GOLDEN_BATCHES[c.sampleId as string] as Golden[]
        expect(golden).toBeDefined()
        const text = JSON.stringify(c.batch)
        for (const events of [parseJsonBatchText(text, options), decodeHttpEvents({ headers: batched, body: text }, options).events]) {
          expect(events.length).toBe(golden.length)
          events.forEach((event, i) => expectEventToMatch(event, golden[i] as Golden))
        }
      })
    } else if (type === 'InvalidSingleEvent') {
      test(`${title} is refused: ${EXPECTED_REFUSALS[c.id]?.slice(0, 2).join(' ')}`, () => {
        expectRefusal(() => eventFromJson(c.event), c.id)
        expectRefusal(() => decodeHttpEvents({ headers: structured, body: JSON.stringify(c.event) }), c.id)
      })
    } else {
      test(`${title} is refused: ${EXPECTED_REFUSALS[c.id]?.join(' ')}`, () => {
        expectRefusal(() => parseJsonBatchText(JSON.stringify(c.batch)), c.id)
        expectRefusal(() => decodeHttpEvents({ headers: batched, body: JSON.stringify(c.batch) }), c.id)
      })
    }
  }
})
