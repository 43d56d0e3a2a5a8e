import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { CloudEvent, HTTP } from 'cloudevents'
import { describe, expect, test } from 'vitest'
import { decodeHttpEvents, encodeBatch, encodeBinary, encodeStructured, type HttpHeadersInput } from './http-binding.js'

const ceHeaders = { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-source': '/s', 'ce-type': 't' }

function refusal(run: () => unknown, code: string = ErrorCodes.EVENT_INVALID): { details: Record<string, unknown>; message: string } {
  try {
    run()
  } catch (error) {
    expect(isMeshletError(error), String(error)).toBe(true)
    expect((error as { code: string }).code).toBe(code)
    return { details: (error as { details: Record<string, unknown> }).details, message: (error as Error).message }
  }
  throw new Error('expected a refusal')
}

function sdkThrows(run: () => unknown): boolean {
  try {
    run()
    return false
  } catch {
    return true
  }
}

describe('where meshlet diverges from the cloudevents SDK HTTP binding', () => {
  test('divergence: ce- header values are percent-decoded on receive (the SDK keeps %20 literally)', () => {
    const headers = { ...ceHeaders, 'ce-subject': 'Euro%20%E2%82%AC' }
    expect(decodeHttpEvents({ headers }).events[0]?.subject).toBe('Euro \u20ac')
    expect((HTTP.toEvent({ headers, body: undefined }) as CloudEvent).subject).toBe('Euro%20%E2%82%AC')
  })

  test('divergence: ce- header values are percent-encoded on send (the SDK sends raw non-ASCII)', () => {
    const event = new CloudEvent({ id: '1', source: '/s', type: 't', subject: 'caf\u00e9 "x"' })
    expect(encodeBinary(event).headers['ce-subject']).toBe('caf%C3%A9%20%22x%22')
    expect(HTTP.binary(event).headers['ce-subject']).toBe('caf\u00e9 "x"')
  })

  test('divergence: time is not invented on receive (the SDK stamps now on an event without ce-time)', () => {
    expect(decodeHttpEvents({ headers: ceHeaders }).events[0]?.time).toBeUndefined()
    expect((HTTP.toEvent({ headers: ceHeaders, body: undefined }) as CloudEvent).time).toBeDefined()
  })

  test('divergence: time keeps the text sent (the SDK rewrites it with toISOString, and replaces an invalid one with now)', () => {
    const headers = { ...ceHeaders, 'ce-time': '2018-04-05T03:56:24Z' }
    expect(decodeHttpEvents({ headers }).events[0]?.time).toBe('2018-04-05T03:56:24Z')
    expect((HTTP.toEvent({ headers, body: undefined }) as CloudEvent).time).toBe('2018-04-05T03:56:24.000Z')
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-time': 'lunchtime' } })).details).toEqual({ attribute: 'time', rule: 'timestamp' })
    expect(sdkThrows(() => HTTP.toEvent({ headers: { ...ceHeaders, 'ce-time': 'lunchtime' }, body: undefined }))).toBe(false)
  })

  test('divergence: a structured event without id is refused, not given one (the SDK makes a random UUID)', () => {
    const headers = { 'content-type': 'application/cloudevents+json' }
    const body = JSON.stringify({ specversion: '1.0', source: '/s', type: 't' })
    expect(refusal(() => decodeHttpEvents({ headers, body })).details).toEqual({ attribute: 'id', rule: 'required' })
    expect((HTTP.toEvent({ headers, body }) as CloudEvent).id).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('divergence: Content-Type compares case-insensitively, with any parameters (the SDK matches exact strings)', () => {
    const body = JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't' })
    for (const contentType of ['Application/CloudEvents+JSON', 'application/cloudevents+json;charset="UTF-8"', 'application/cloudevents+json ; charset=utf-8']) {
      expect(decodeHttpEvents({ headers: { 'content-type': contentType }, body }).mode, contentType).toBe('structured')
    }
    expect(sdkThrows(() => HTTP.toEvent({ headers: { 'content-type': 'Application/CloudEvents+JSON' }, body }))).toBe(true)
  })

  test('divergence: structured data_base64 decodes to the bytes (the SDK makes a Uint32Array, one element per byte)', () => {
    const body = JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't', data_base64: 'TWE=' })
    const headers = { 'content-type': 'application/cloudevents+json' }
    expect(decodeHttpEvents({ headers, body }).events[0]?.data).toEqual(new Uint8Array([77, 97]))
    expect((HTTP.toEvent({ headers, body }) as CloudEvent<unknown>).data).toBeInstanceOf(Uint32Array)
  })

  test('divergence: an unknown specversion and a non-RFC-2046 datacontenttype are refused (the SDK takes both)', () => {
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-specversion': '0.9' } })).details.rule).toBe('specversion')
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'xyz' }, body: 'a' })).details).toEqual({ attribute: 'datacontenttype', rule: 'media-type' })
    expect(sdkThrows(() => HTTP.toEvent({ headers: { ...ceHeaders, 'content-type': 'xyz' }, body: 'a' }))).toBe(false)
  })

  test('divergence: a batch that is not JSON is a MeshletError (the SDK throws a SyntaxError)', () => {
    const headers = { 'content-type': 'application/cloudevents-batch+json' }
    expect(refusal(() => decodeHttpEvents({ headers, body: '[' })).details).toEqual({ attribute: 'batch', rule: 'json' })
    expect(sdkThrows(() => HTTP.toEvent({ headers, body: '[' }))).toBe(true)
  })

  test('divergence: a JSON string with a JSON datacontenttype is sent as a JSON string in binary mode (the SDK sends the string raw, as if it were JSON text)', () => {
    const event = new CloudEvent({ id: '1', source: '/s', type: 't', datacontenttype: 'application/json', data: 'hello' })
    expect(encodeBinary(event).body).toBe('"hello"')
    expect(HTTP.binary(event).body).toBe('hello')
  })
})

describe('decodeHttpEvents: binary mode', () => {
  test('JSON bodies parse, text bodies are strings, other bodies bytes (with their base64)', () => {
    expect(decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'application/vnd.x+json' }, body: '[1]' }).events[0]?.data).toEqual([1])
    expect(decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'text/plain' }, body: new TextEncoder().encode('\u20ac') }).events[0]?.data).toBe('\u20ac')
    const bytes = decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'image/png' }, body: new Uint8Array([0xff, 0]) }).events[0]
    expect(bytes?.data).toEqual(new Uint8Array([0xff, 0]))
    expect(bytes?.data_base64).toBe('/wA=')
  })

  test('header names are case-insensitive; one spelled twice is refused', () => {
    expect(decodeHttpEvents({ headers: { 'CE-SpecVersion': '1.0', 'Ce-Id': '1', 'ce-source': '/s', 'CE-TYPE': 't' } }).events[0]?.id).toBe('1')
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'CE-ID': '2' } })).details).toEqual({ attribute: 'ce-id', rule: 'duplicate' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-subject': ['a', 'b'] } })).details).toEqual({ attribute: 'ce-subject', rule: 'duplicate' })
  })

  test('a fetch Headers object is read too', () => {
    const headers = new Headers({ ...ceHeaders, 'content-type': 'text/plain' })
    expect(decodeHttpEvents({ headers, body: 'hi' }).events[0]?.data).toBe('hi')
  })

  test('extension names must be lowercase a-z0-9; ce-datacontenttype and ce-data are refused', () => {
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-my-ext': 'x' } })).details).toEqual({ attribute: 'ce-my-ext', rule: 'name' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-datacontenttype': 'text/plain' } })).details.rule).toBe('reserved')
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-data': 'x' } })).details.rule).toBe('reserved')
  })

  test('declared extension types convert header text: integer, boolean, binary', () => {
    const event = decodeHttpEvents(
      { headers: { ...ceHeaders, 'ce-n': '-12', 'ce-f': 'true', 'ce-b': 'TWE=' } },
      { extensionTypes: { n: 'integer', f: 'boolean', b: 'binary' } },
    ).events[0]
    expect([event?.n, event?.f, event?.b]).toEqual([-12, true, new Uint8Array([77, 97])])
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-n': '1.5' } }, { extensionTypes: { n: 'integer' } })).details).toEqual({ attribute: 'n', rule: 'type' })
  })

  test('a message with no CloudEvent says what is missing', () => {
    const { message, details } = refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/json' }, body: '{}' }))
    expect(details).toEqual({ attribute: 'specversion', rule: 'required' })
    expect(message).toContain('ce-specversion')
  })

  test('invalid UTF-8: in a text or JSON body, and raw in a header, is refused', () => {
    const broken = new Uint8Array([0x22, 0xc3, 0x28, 0x22])
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'application/json' }, body: broken })).details).toEqual({ attribute: 'data', rule: 'utf-8' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'text/plain' }, body: broken })).details).toEqual({ attribute: 'data', rule: 'utf-8' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-subject': '\u00c3\u0028' } })).details).toEqual({ attribute: 'ce-subject', rule: 'header-encoding' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-subject': '%C3%28' } })).details).toEqual({ attribute: 'ce-subject', rule: 'utf-8' })
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'text/plain' }, body: 'a\ud800' })).details).toEqual({ attribute: 'data', rule: 'utf-8' })
  })

  test('a JSON body that is not JSON is refused naming data', () => {
    expect(refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'application/json' }, body: '{' })).details).toEqual({ attribute: 'data', rule: 'json' })
  })
})

describe('decodeHttpEvents: structured and batch modes', () => {
  test('a CloudEvents format other than JSON, or a charset other than UTF-8, is 415', () => {
    expect(refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents+avro' }, body: 'x' }), ErrorCodes.UNSUPPORTED_MEDIA_TYPE).message).toContain('application/cloudevents+json')
    refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents+json; charset=utf-16' }, body: '{}' }), ErrorCodes.UNSUPPORTED_MEDIA_TYPE)
    refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents-batch+xml' }, body: '[]' }), ErrorCodes.UNSUPPORTED_MEDIA_TYPE)
  })

  test('structured: invalid UTF-8 in the body is refused', () => {
    const body = new Uint8Array([...new TextEncoder().encode('{"specversion":"1.0","id":"'), 0xff, ...new TextEncoder().encode('","source":"/s","type":"t"}')])
    expect(refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents+json' }, body })).details).toEqual({ attribute: 'event', rule: 'utf-8' })
  })

  test('structured: ce- headers next to the body are ignored (the body has every attribute)', () => {
    const body = JSON.stringify({ specversion: '1.0', id: 'body', source: '/s', type: 't' })
    expect(decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents+json', 'ce-id': 'header' }, body }).events[0]?.id).toBe('body')
  })
})

describe('limits on the wire', () => {
  test('a binary event whose body and ce- headers pass maxEventSize is 413 with the limit and how to raise it', () => {
    const body = new Uint8Array(64 * 1024 - 40)
    const { message, details } = refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'application/octet-stream' }, body }), ErrorCodes.EVENT_TOO_LARGE)
    expect(details).toMatchObject({ limit: 65536, option: 'maxEventSize' })
    expect(message).toContain('raise maxEventSize')
    expect(decodeHttpEvents({ headers: { ...ceHeaders, 'content-type': 'application/octet-stream' }, body }, { maxEventSize: 1 << 20 }).events).toHaveLength(1)
  })

  test('one huge header, and too many ce- headers, are refused before they are decoded', () => {
    refusal(() => decodeHttpEvents({ headers: { ...ceHeaders, 'ce-subject': '%41'.repeat(30_000) } }), ErrorCodes.EVENT_TOO_LARGE)
    const many: Record<string, string> = { ...ceHeaders }
    for (let i = 0; i < 200; i++) many[`ce-x${i}`] = 'v'
    expect(refusal(() => decodeHttpEvents({ headers: many }), ErrorCodes.EVENT_TOO_LARGE).details).toMatchObject({ limit: 128 })
  })

  test('a structured body over the limit is refused before it is parsed; a batch body over maxBatchSize too', () => {
    refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents+json' }, body: '{' + ' '.repeat(70_000) }), ErrorCodes.EVENT_TOO_LARGE)
    expect(refusal(() => decodeHttpEvents({ headers: { 'content-type': 'application/cloudevents-batch+json' }, body: '[' + ' '.repeat(2_000_000) }), ErrorCodes.EVENT_TOO_LARGE).details).toMatchObject({ option: 'maxBatchSize' })
  })

  test('encoders hold to the same limits', () => {
    const event = new CloudEvent({ id: '1', source: '/s', type: 't', data: 'x'.repeat(70_000) })
    refusal(() => encodeStructured(event), ErrorCodes.EVENT_TOO_LARGE)
    refusal(() => encodeBinary(event), ErrorCodes.EVENT_TOO_LARGE)
    expect(refusal(() => encodeBatch([event]), ErrorCodes.EVENT_TOO_LARGE).details).toMatchObject({ what: 'batch[0] event' })
    expect(refusal(() => encodeBatch(Array(3).fill(new CloudEvent({ id: '1', source: '/s', type: 't' })), { maxBatchEvents: 2 }), ErrorCodes.EVENT_TOO_LARGE).details).toMatchObject({ option: 'maxBatchEvents' })
  })
})

describe('encoders', () => {
  test('binary: attributes as ce- headers, datacontenttype as Content-Type, data as the body; no time is added', () => {
    const message = encodeBinary({ specversion: '1.0', id: '1', source: '/s', type: 't', datacontenttype: 'text/plain', data: 'hi', n: 3 })
    expect(message).toEqual({ headers: { 'content-type': 'text/plain', 'ce-specversion': '1.0', 'ce-id': '1', 'ce-source': '/s', 'ce-type': 't', 'ce-n': '3' }, body: 'hi' })
  })

  test('binary: an object under a text datacontenttype cannot be a body, and says what to do', () => {
    expect(refusal(() => encodeBinary({ specversion: '1.0', id: '1', source: '/s', type: 't', datacontenttype: 'text/plain', data: { a: 1 } })).details).toEqual({ attribute: 'data', rule: 'representation' })
  })

  test('structured and batch set their media types', () => {
    const event = { specversion: '1.0', id: '1', source: '/s', type: 't' }
    expect(encodeStructured(event).headers).toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' })
    const batch = encodeBatch([event, event])
    expect(batch.headers['content-type']).toBe('application/cloudevents-batch+json; charset=utf-8')
    expect(decodeHttpEvents(batch as { headers: HttpHeadersInput; body: string }).events).toHaveLength(2)
  })
})
