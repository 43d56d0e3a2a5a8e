import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { CloudEvent } from 'cloudevents'
import { describe, expect, test } from 'vitest'
import {
  eventFromJson, fromStructuredBytes, parseJsonBatchText, parseJsonEventText, serializeJsonBatch, serializeJsonEvent,
  toJsonObject, toStructuredBytes, withAttributes,
} from './json-format.js'

const minimal = { specversion: '1.0', id: 'e1', source: '/s', type: 't' }

function detailsOf(run: () => unknown, code: string = ErrorCodes.EVENT_INVALID): Record<string, unknown> {
  try {
    run()
  } catch (error) {
    expect(isMeshletError(error), String(error)).toBe(true)
    expect((error as { code: string }).code).toBe(code)
    return (error as { details: Record<string, unknown> }).details
  }
  throw new Error('expected a refusal')
}

describe('decoding never invents attributes', () => {
  test('an event without time has none (the SDK constructor would stamp now), and is a frozen CloudEvent', () => {
    const event = eventFromJson(minimal)
    expect(event).toBeInstanceOf(CloudEvent)
    expect(Object.isFrozen(event)).toBe(true)
    expect(Object.keys(event)).toEqual(['specversion', 'id', 'source', 'type'])
    expect(event.time).toBeUndefined()
  })

  test('time keeps the text sent (offset and nanoseconds), not the SDK toISOString form', () => {
    expect(eventFromJson({ ...minimal, time: '2018-04-05T18:31:00.123456789+01:00' }).time).toBe('2018-04-05T18:31:00.123456789+01:00')
  })

  test('JSON.stringify of a decoded event is the JSON format (the SDK toJSON throws for an event without time)', () => {
    const event = eventFromJson({ ...minimal, data_base64: 'AQI=' })
    expect(JSON.parse(JSON.stringify(event))).toEqual({ ...minimal, data_base64: 'AQI=' })
  })

  test('cloneWith on a decoded event adds only what it is given (the SDK cloneWith stamps a time)', () => {
    const clone = eventFromJson(minimal).cloneWith({ ttl: 3 })
    expect(clone).toBeInstanceOf(CloudEvent)
    expect({ ...clone }).toEqual({ ...minimal, ttl: 3 })
  })

  test('withAttributes removes an attribute set to undefined and refuses an invalid result', () => {
    expect({ ...withAttributes(eventFromJson({ ...minimal, subject: 'x' }), { subject: undefined }) }).toEqual(minimal)
    expect(detailsOf(() => withAttributes(eventFromJson(minimal), { subject: '' }))).toEqual({ attribute: 'subject', rule: 'non-empty' })
  })
})

describe('attribute types: a wrong JSON type for every attribute is refused with its name', () => {
  const wrong: Array<[string, unknown]> = [
    ['specversion', 1], ['id', 25], ['id', true], ['source', {}], ['type', ['t']], ['datacontenttype', 1],
    ['dataschema', false], ['subject', 3], ['time', 1522949460000],
  ]
  test.each(wrong)('%s = %j', (attribute, value) => {
    expect(detailsOf(() => eventFromJson({ ...minimal, [attribute]: value }))).toEqual({ attribute, rule: 'type' })
  })

  test.each([
    ['an object', { a: 1 }], ['an array', [1]], ['a fraction', 1.5], ['a number past 32 bits', 2 ** 31],
  ])('an extension holding %s is refused', (_what, value) => {
    const details = detailsOf(() => eventFromJson({ ...minimal, myext: value }))
    expect(details.attribute).toBe('myext')
    expect(['type', 'integer-range']).toContain(details.rule)
  })

  test('extension integers at the 32-bit bounds, booleans and strings pass', () => {
    const event = eventFromJson({ ...minimal, lo: -(2 ** 31), hi: 2 ** 31 - 1, flag: false, s: '' })
    expect([event.lo, event.hi, event.flag, event.s]).toEqual([-(2 ** 31), 2 ** 31 - 1, false, ''])
  })

  test('declared extension types are enforced: binary must be base64, uri absolute, timestamp RFC 3339', () => {
    const options = { extensionTypes: { b: 'binary', u: 'uri', ts: 'timestamp', i: 'integer', f: 'boolean' } as const }
    expect(detailsOf(() => eventFromJson({ ...minimal, b: 'not base64!' }, options))).toEqual({ attribute: 'b', rule: 'base64' })
    expect(detailsOf(() => eventFromJson({ ...minimal, u: '/relative' }, options))).toEqual({ attribute: 'u', rule: 'uri' })
    expect(detailsOf(() => eventFromJson({ ...minimal, ts: '2023-02-29T00:00:00Z' }, options))).toEqual({ attribute: 'ts', rule: 'timestamp' })
    expect(detailsOf(() => eventFromJson({ ...minimal, i: '10' }, options))).toEqual({ attribute: 'i', rule: 'type' })
    expect(detailsOf(() => eventFromJson({ ...minimal, f: 'true' }, options))).toEqual({ attribute: 'f', rule: 'type' })
  })

  test.each([
    ['2018-04-05T17:31:60Z', true], ['2020-02-29T00:00:00z', true], ['2018-04-05t17:31:00.5-23:59', true],
    ['2018-13-05T17:31:00Z', false], ['2018-04-31T17:31:00Z', false], ['2018-04-05T24:00:00Z', false],
    ['2018-04-05T17:31:00+05:60', false], ['2018-04-05 17:31:00Z', false], ['2018-04-05T17:31:00.Z', false],
  ])('time %s valid: %s', (time, valid) => {
    if (valid) expect(eventFromJson({ ...minimal, time }).time).toBe(time)
    else expect(detailsOf(() => eventFromJson({ ...minimal, time }))).toEqual({ attribute: 'time', rule: 'timestamp' })
  })

  test('strings with control characters, lone surrogates or noncharacters are refused', () => {
    for (const subject of ['a\nb', 'a\u0085b', 'a\ud800b', 'a\uffffb']) {
      expect(detailsOf(() => eventFromJson({ ...minimal, subject })), JSON.stringify(subject)).toEqual({ attribute: 'subject', rule: 'characters' })
    }
    expect(eventFromJson({ ...minimal, subject: 'emoji \u{1F600} ok' }).subject).toBe('emoji \u{1F600} ok')
  })

  test('source must be a URI-reference, dataschema an absolute URI', () => {
    expect(detailsOf(() => eventFromJson({ ...minimal, source: 'has space' }))).toEqual({ attribute: 'source', rule: 'uri-reference' })
    expect(detailsOf(() => eventFromJson({ ...minimal, source: 'bad%zzescape' }))).toEqual({ attribute: 'source', rule: 'uri-reference' })
    expect(detailsOf(() => eventFromJson({ ...minimal, dataschema: '//no-scheme' }))).toEqual({ attribute: 'dataschema', rule: 'uri' })
    expect(eventFromJson({ ...minimal, source: 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66' }).source).toContain('urn:')
  })

  test('a non-integer extension value under a valid name is refused for its type', () => {
    expect(detailsOf(() => eventFromJson({ ...minimal, myextension: 1.5 }))).toEqual({ attribute: 'myextension', rule: 'type' })
  })
})

describe('data and data_base64', () => {
  test('data_base64 decodes to bytes and keeps its text; data keeps its JSON value', () => {
    const binary = eventFromJson({ ...minimal, data_base64: 'TWE=' })
    expect(binary.data).toEqual(new Uint8Array([77, 97]))
    expect(binary.data_base64).toBe('TWE=')
    expect(eventFromJson({ ...minimal, data: { a: [1, 'x'] } }).data).toEqual({ a: [1, 'x'] })
  })

  test.each(['not base64', 'TWE', 'TW==E', 'TWE=\n', 'TW-_'])('data_base64 %j is refused', (data_base64) => {
    expect(detailsOf(() => eventFromJson({ ...minimal, data_base64 }))).toEqual({ attribute: 'data_base64', rule: 'base64' })
  })

  test('data_base64 that is not a string is refused for its type', () => {
    expect(detailsOf(() => eventFromJson({ ...minimal, data_base64: 12 }))).toEqual({ attribute: 'data_base64', rule: 'type' })
  })

  test('null data and attributes are absent', () => {
    expect(Object.keys(eventFromJson({ ...minimal, data: null, data_base64: 'AA==', subject: null }))).toEqual([...Object.keys(minimal), 'data', 'data_base64'])
  })

  test('serializing refuses data with no JSON form (BigInt) and data that is not binary next to data_base64', () => {
    expect(detailsOf(() => serializeJsonEvent({ ...minimal, data: { n: 1n } }))).toEqual({ attribute: 'data', rule: 'representation' })
    expect(detailsOf(() => serializeJsonEvent({ ...minimal, data: 'x', data_base64: 'AA==' }))).toEqual({ attribute: 'data', rule: 'exclusive' })
  })
})

describe('hostile JSON', () => {
  test('a __proto__ member is refused as an attribute name and pollutes nothing', () => {
    const text = '{"specversion":"1.0","id":"1","source":"/s","type":"t","__proto__":{"polluted":true}}'
    expect(detailsOf(() => parseJsonEventText(text))).toEqual({ attribute: '__proto__', rule: 'name' })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  test('__proto__ inside data stays an own property of the data, not a prototype', () => {
    const event = parseJsonEventText('{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"__proto__":{"x":1}}}')
    const data = event.data as Record<string, unknown>
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype)
    expect(Object.hasOwn(data, '__proto__')).toBe(true)
  })

  test('a repeated attribute is refused (JSON.parse would keep the last silently), escaped spellings included', () => {
    expect(detailsOf(() => parseJsonEventText('{"specversion":"1.0","id":"a","source":"/s","type":"t","id":"b"}'))).toEqual({ attribute: 'id', rule: 'duplicate' })
    expect(detailsOf(() => parseJsonEventText('{"specversion":"1.0","id":"a","source":"/s","type":"t","\\u0069d":"b"}'))).toEqual({ attribute: 'id', rule: 'duplicate' })
    expect(detailsOf(() => parseJsonBatchText('[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"a","source":"/s","type":"t","type":"u"}]'))).toEqual({ attribute: 'type', rule: 'duplicate', index: 1 })
  })

  test('repeated names inside data are the application\'s business', () => {
    expect(parseJsonEventText('{"specversion":"1.0","id":"a","source":"/s","type":"t","data":{"k":1,"k":2}}').data).toEqual({ k: 2 })
  })

  test('nesting deeper than maxJsonDepth is refused before anything walks it', () => {
    const deep = (n: number): string => `{"specversion":"1.0","id":"a","source":"/s","type":"t","data":${'['.repeat(n)}${']'.repeat(n)}}`
    expect(parseJsonEventText(deep(63)).data).toBeDefined()
    expect(detailsOf(() => parseJsonEventText(deep(64)))).toEqual({ attribute: 'data', rule: 'depth' })
    expect(detailsOf(() => parseJsonEventText(deep(30_000), { maxEventSize: 1 << 20 }))).toEqual({ attribute: 'data', rule: 'depth' })
    expect(parseJsonEventText(deep(100), { maxJsonDepth: 200 }).data).toBeDefined()
  })

  test('text that is not JSON, or JSON that is not an object, is refused', () => {
    expect(detailsOf(() => parseJsonEventText('{"specversion":'))).toEqual({ attribute: 'event', rule: 'json' })
    expect(detailsOf(() => parseJsonEventText('[1]'))).toEqual({ attribute: 'event', rule: 'object' })
    expect(detailsOf(() => parseJsonEventText('\ufeff{}'))).toEqual({ attribute: 'event', rule: 'json' })
    expect(detailsOf(() => parseJsonBatchText('{}'))).toEqual({ attribute: 'batch', rule: 'array' })
  })

  test('invalid UTF-8 in stored bytes is refused, not replaced', () => {
    const bytes = toStructuredBytes(minimal)
    const broken = new Uint8Array([...bytes.subarray(0, 10), 0xc3, 0x28, ...bytes.subarray(10)])
    expect(detailsOf(() => fromStructuredBytes(broken))).toEqual({ attribute: 'event', rule: 'utf-8' })
  })
})

describe('limits', () => {
  const big = (n: number): string => JSON.stringify({ ...minimal, data: 'x'.repeat(n) })

  test('an event over maxEventSize (64 KiB by default) is refused with the limit and the option that raises it', () => {
    const text = big(64 * 1024)
    let thrown: unknown
    try {
      parseJsonEventText(text)
    } catch (error) {
      thrown = error
    }
    expect(isMeshletError(thrown, ErrorCodes.EVENT_TOO_LARGE)).toBe(true)
    expect((thrown as Error).message).toMatch(/65536 bytes.*maxEventSize/)
    expect(parseJsonEventText(text, { maxEventSize: 128 * 1024 }).data).toHaveLength(64 * 1024)
  })

  test('size counts UTF-8 bytes, not UTF-16 code units', () => {
    const text = JSON.stringify({ ...minimal, data: '\u20ac'.repeat(30_000) })
    expect(text.length).toBeLessThan(64 * 1024)
    expect(detailsOf(() => parseJsonEventText(text), ErrorCodes.EVENT_TOO_LARGE).size).toBe(Buffer.byteLength(text))
  })

  test('a batch over maxBatchEvents, over maxBatchSize, or holding an event over maxEventSize is refused', () => {
    const one = JSON.stringify(minimal)
    expect(detailsOf(() => parseJsonBatchText(`[${Array(1001).fill(one).join(',')}]`), ErrorCodes.EVENT_TOO_LARGE)).toMatchObject({ option: 'maxBatchEvents', limit: 1000 })
    expect(detailsOf(() => parseJsonBatchText(`[${one},${one}]`, { maxBatchSize: 100 }), ErrorCodes.EVENT_TOO_LARGE)).toMatchObject({ option: 'maxBatchSize' })
    expect(detailsOf(() => parseJsonBatchText(`[${one},${big(70_000)}]`), ErrorCodes.EVENT_TOO_LARGE)).toMatchObject({ option: 'maxEventSize', what: 'batch[1] event' })
  })

  test('limits that are not positive integers are a configuration error', () => {
    expect(detailsOf(() => parseJsonEventText('{}', { maxEventSize: 0 }), ErrorCodes.CONFIG_INVALID)).toEqual({ option: 'maxEventSize' })
  })
})

describe('serialization', () => {
  test('an SDK CloudEvent serializes with its time as given, binary data as data_base64, Dates as RFC 3339', () => {
    const sdk = new CloudEvent({ id: '1', source: '/s', type: 't', time: '2018-04-05T17:31:00+01:00', data: new Uint8Array([1, 2]), when: new Date(0) }, false)
    expect(toJsonObject(sdk)).toEqual({ id: '1', time: '2018-04-05T17:31:00+01:00', type: 't', source: '/s', specversion: '1.0', data_base64: 'AQI=', when: '1970-01-01T00:00:00.000Z' })
  })

  test('serializing checks the event as decoding does', () => {
    expect(detailsOf(() => serializeJsonEvent({ ...minimal, Bad: 'x' }))).toEqual({ attribute: 'Bad', rule: 'name' })
    expect(detailsOf(() => serializeJsonEvent({ source: '/s', type: 't', specversion: '1.0' } as never))).toEqual({ attribute: 'id', rule: 'required' })
    expect(detailsOf(() => serializeJsonBatch([minimal, { ...minimal, time: 'noon' }]))).toEqual({ attribute: 'time', rule: 'timestamp', index: 1 })
  })

  test('toStructuredBytes → fromStructuredBytes gives the same event', () => {
    const event = eventFromJson({ ...minimal, time: '2018-04-05T17:31:00Z', ext: 7, data: { a: '\u20ac' } })
    expect({ ...fromStructuredBytes(toStructuredBytes(event)) }).toEqual({ ...event })
  })
})
