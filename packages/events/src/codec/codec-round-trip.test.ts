/**
 * Properties of the codec over generated input: every valid event survives each content mode
 * unchanged, and any bytes and headers either decode or are refused with a MeshletError.
 */
import { test } from '@fast-check/vitest'
import { isMeshletError } from '@meshlet/core'
import fc from 'fast-check'
import { describe, expect } from 'vitest'
import type { ExtensionTypes } from './attribute-rules.js'
import { decodeHeaderValue } from './header-encoding.js'
import { decodeHttpEvents, encodeBatch, encodeBinary, encodeStructured, type HttpHeadersInput } from './http-binding.js'
import { eventFromJson, fromStructuredBytes, toStructuredBytes, withAttributes, type DecodedEvent } from './json-format.js'

const ALLOWED = /^[^\p{Cc}\p{Surrogate}\p{Noncharacter_Code_Point}]*$/u
const text = (minLength = 0): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', minLength, maxLength: 30 }).filter((s) => ALLOWED.test(s))
const CORE = new Set(['id', 'source', 'specversion', 'type', 'datacontenttype', 'dataschema', 'subject', 'time', 'data'])
const extensionName = fc.stringMatching(/^[a-z0-9]{1,20}$/).filter((name) => !CORE.has(name))
const extensionValue = fc.oneof(text(), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.boolean())

const data = fc.oneof(
  fc.constant({}),
  fc.record({ datacontenttype: fc.constantFrom('application/json', 'application/vnd.x+json; charset=utf-8'), // What JSON can carry: -0 becomes 0 on the wire (JSON has no negative zero), so generate what survives it.
    data: fc.jsonValue({ maxDepth: 4 }).filter((v) => v !== null).map((v) => JSON.parse(JSON.stringify(v)) as unknown) }),
  fc.record({ datacontenttype: fc.constantFrom('text/plain', 'text/csv; charset=UTF-8'), data: text(1) }),
  fc.record({ datacontenttype: fc.constantFrom('application/octet-stream', 'image/png'), data: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ data: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
)

/** A valid event as the codec holds it in memory. */
const validEvent: fc.Arbitrary<DecodedEvent> = fc
  .record({
    id: text(1),
    source: fc.oneof(fc.webUrl(), fc.constantFrom('/orders/eu', '#fragment', 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', '1-555-123-4567')),
    type: text(1),
    subject: fc.option(text(1), { nil: undefined }),
    dataschema: fc.option(fc.webUrl(), { nil: undefined }),
    time: fc.option(fc.date({ min: new Date('1970-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }).map((d) => d.toISOString()), { nil: undefined }),
    extensions: fc.dictionary(extensionName, extensionValue, { maxKeys: 4 }),
    data,
  })
  .map(({ extensions, data: withData, ...core }) => withAttributes({ specversion: '1.0', ...core } as never, { ...extensions, ...withData }))

/** Binary mode carries no types: the receiver declares the extensions' (as it would for known ones). */
function extensionTypesOf(event: DecodedEvent): ExtensionTypes {
  const types: Record<string, 'integer' | 'boolean'> = {}
  for (const [name, value] of Object.entries(event)) {
    if (typeof value === 'number') types[name] = 'integer'
    else if (typeof value === 'boolean') types[name] = 'boolean'
  }
  return types
}

const attributesOf = (event: DecodedEvent): Record<string, unknown> => ({ ...event })

describe('encode → decode is the identity for valid events', () => {
  test.prop([validEvent])('structured mode', (event) => {
    const decoded = decodeHttpEvents(encodeStructured(event) as { headers: HttpHeadersInput; body: string })
    expect(decoded.mode).toBe('structured')
    expect(attributesOf(decoded.events[0] as DecodedEvent)).toEqual(attributesOf(event))
  })

  test.prop([validEvent])('binary mode', (event) => {
    const decoded = decodeHttpEvents(encodeBinary(event), { extensionTypes: extensionTypesOf(event) })
    expect(decoded.mode).toBe('binary')
    expect(attributesOf(decoded.events[0] as DecodedEvent)).toEqual(attributesOf(event))
  })

  test.prop([fc.array(validEvent, { maxLength: 5 })])('batched mode', (events) => {
    const decoded = decodeHttpEvents(encodeBatch(events))
    expect(decoded.mode).toBe('batch')
    expect(decoded.events.map(attributesOf)).toEqual(events.map(attributesOf))
  })

  test.prop([validEvent])('the broker form (toStructuredBytes → fromStructuredBytes)', (event) => {
    expect(attributesOf(fromStructuredBytes(toStructuredBytes(event)))).toEqual(attributesOf(event))
  })
})

function decodesOrRefuses(run: () => unknown): void {
  try {
    run()
  } catch (error) {
    if (!isMeshletError(error)) throw error
    expect(error.message.length).toBeGreaterThan(0)
  }
}

const headerName = fc.oneof(
  fc.constantFrom('content-type', 'Content-Type', 'ce-specversion', 'ce-id', 'CE-ID', 'ce-source', 'ce-type', 'ce-time', 'ce-subject', 'ce-ext', 'ce-Bad.Name', 'ce-data', 'ce-datacontenttype'),
  fc.string({ maxLength: 12 }),
)
const headerValue = fc.oneof(
  fc.constantFrom('1.0', '0.3', 'application/cloudevents+json', 'application/cloudevents-batch+json; charset=utf-8', 'application/json', 'text/plain', 'Application/CloudEvents+JSON;charset="x', '2018-04-05T17:31:00Z', '%C0%A0', '"quoted\\"', '%'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
)
const headers = fc.dictionary(headerName, headerValue, { maxKeys: 10 })
const jsonBody = fc.oneof(
  fc.json({ maxDepth: 6 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ specversion: '1.0', id: 'x', source: '/s', type: 't', data: v })),
  fc.array(fc.dictionary(fc.constantFrom('specversion', 'id', 'source', 'type', 'time', 'data', 'data_base64', 'x', '__proto__'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 3 }).map((a) => JSON.stringify(a)),
)
const body = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), jsonBody, fc.constant(undefined))

describe('any input either decodes or is refused with a MeshletError', () => {
  test.prop([headers, body], { numRuns: 500 })('decodeHttpEvents over arbitrary headers and bodies', (h, b) => {
    decodesOrRefuses(() => decodeHttpEvents({ headers: h, body: b }))
  })

  test.prop([body.map((b) => (typeof b === 'string' ? b : b === undefined ? '' : new TextDecoder().decode(b))), fc.constantFrom('application/cloudevents+json', 'application/cloudevents-batch+json')], { numRuns: 300 })(
    'structured and batch bodies of arbitrary text',
    (b, contentType) => {
      decodesOrRefuses(() => decodeHttpEvents({ headers: { 'content-type': contentType }, body: b }))
    },
  )

  test.prop([fc.jsonValue({ maxDepth: 4 })])('eventFromJson over arbitrary JSON values', (value) => {
    decodesOrRefuses(() => eventFromJson(value))
  })

  test.prop([fc.string({ unit: 'binary', maxLength: 60 })])('decodeHeaderValue over arbitrary strings', (raw) => {
    decodesOrRefuses(() => decodeHeaderValue('ce-x', raw))
  })
})
