/**
 * The CloudEvents HTTP protocol binding (v1.0.2): binary, structured and batched content modes,
 * for requests and responses alike. The mode is read from Content-Type as the binding says
 * (case-insensitive, parameters and quoted-strings allowed): `application/cloudevents-batch…` is
 * batched, `application/cloudevents…` structured, anything else (or none) binary.
 *
 * Where this differs from the cloudevents SDK's HTTP binding, on purpose (each has a test named
 * after it in http-binding.test.ts): ce- header values are percent-encoded and decoded; media types
 * compare case-insensitively with any parameters; `id` and `time` are never invented on receive
 * and `time` keeps the text that was sent; invalid UTF-8, bad base64, unknown specversions and
 * non-RFC-2046 content types are refused; refusals are MeshletErrors with a stable code.
 */
import type { MeshletError } from '@meshlet/core'
import {
  attributeFromString, base64FromBytes, canonicalString, CORE_ATTRIBUTE_TYPES, isAttributeName, type ExtensionTypes,
} from './attribute-rules.js'
import { atBatchIndex, eventInvalid, eventTooLarge, unsupportedMediaType } from './codec-errors.js'
import { MAX_CE_HEADERS, resolveLimits, type CodecLimits, type ResolvedLimits } from './event-limits.js'
import { decodeHeaderValue, encodeHeaderValue } from './header-encoding.js'
import {
  checkRequired, checkSpecVersion, cloudEventOf, eventFromJson, jsonText, parseCheckedJson, parseJsonBatchText,
  serializeJsonEvent, toJsonObject, type DecodedEvent, type EventInput, type JsonFormatOptions,
} from './json-format.js'
import { hasUtf8Charset, isJsonMediaType, isTextMediaType, parseMediaType, type MediaType } from './media-type.js'
import { checkWellFormed, decodeUtf8, utf8ByteLength } from './utf8-text.js'

export type HttpContentMode = 'binary' | 'structured' | 'batch'

export type HttpHeaderValue = string | readonly string[] | undefined

/** Node's IncomingHttpHeaders, undici's response headers, or a fetch Headers (anything with get/forEach). */
export type HttpHeadersInput =
  | Readonly<Record<string, HttpHeaderValue>>
  | { forEach(callback: (value: string, name: string) => void): void; get(name: string): string | null }

export interface HttpMessageInput {
  headers: HttpHeadersInput
  /** The body as received (bytes), or text a framework already decoded; absent or empty for no data. */
  body?: Uint8Array | string | null
}

export interface EncodedHttpMessage {
  /** Lowercased header names; values are ASCII (ce- values percent-encoded). */
  headers: Record<string, string>
  body: Uint8Array | string
}

export interface DecodedHttpEvents {
  mode: HttpContentMode
  events: DecodedEvent[]
}

export type HttpDecodeOptions = CodecLimits & JsonFormatOptions

export type HttpEncodeOptions = Pick<CodecLimits, 'maxEventSize' | 'maxBatchSize' | 'maxBatchEvents'>

export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8'
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json; charset=utf-8'

const STRUCTURED_ESSENCE = 'application/cloudevents+json'
const BATCH_ESSENCE = 'application/cloudevents-batch+json'

interface ReceivedHeaders {
  contentType: string | undefined
  /** Lowercased ce- header names → raw values, in the order received. */
  ce: Map<string, string>
  /** Bytes of the ce- headers (names and values) and Content-Type: part of a binary-mode event's size. */
  size: number
}

function isHeadersObject(headers: HttpHeadersInput): headers is Extract<HttpHeadersInput, { get: unknown }> {
  return typeof (headers as { forEach?: unknown }).forEach === 'function' && typeof (headers as { get?: unknown }).get === 'function'
}

function singleValue(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string') return value
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0]
  if (Array.isArray(value)) throw eventInvalid(name, 'duplicate', `${name} is sent ${value.length} times; send it once`)
  throw eventInvalid(name, 'type', `${name} has a value that is not a string`)
}

function readHeaders(headers: HttpHeadersInput): ReceivedHeaders {
  const received: ReceivedHeaders = { contentType: undefined, ce: new Map(), size: 0 }
  const take = (rawName: string, rawValue: unknown): void => {
    const name = rawName.toLowerCase()
    const isCe = name.startsWith('ce-')
    if (!isCe && name !== 'content-type') return
    const value = singleValue(name, rawValue)
    if (value === undefined) return
    if (name === 'content-type') {
      if (received.contentType !== undefined) throw eventInvalid(name, 'duplicate', 'content-type is sent twice; send it once')
      received.contentType = value
    } else {
      if (received.ce.has(name)) throw eventInvalid(name, 'duplicate', `${name} is sent twice (header names are case-insensitive); send it once`)
      if (received.ce.size === MAX_CE_HEADERS) throw eventTooLarge('ce- header count', MAX_CE_HEADERS + 1, MAX_CE_HEADERS, 'nothing (a fixed sanity limit: send fewer extension attributes)', 'headers')
      received.ce.set(name, value)
    }
    received.size += name.length + value.length
  }
  if (isHeadersObject(headers)) headers.forEach((value, name) => take(name, value))
  else for (const name of Object.keys(headers)) take(name, headers[name])
  return received
}

function essenceOf(contentType: string): string {
  const semicolon = contentType.indexOf(';')
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
}

export function contentModeOf(contentType: string | undefined): HttpContentMode {
  if (contentType === undefined) return 'binary'
  const essence = essenceOf(contentType)
  if (essence.startsWith('application/cloudevents-batch')) return 'batch'
  if (essence.startsWith('application/cloudevents')) return 'structured'
  return 'binary'
}

function bodyText(body: Uint8Array | string, attribute: string): string {
  return typeof body === 'string' ? checkWellFormed(body, attribute) : decodeUtf8(body, attribute)
}

function bodySize(body: Uint8Array | string): number {
  return typeof body === 'string' ? utf8ByteLength(body) : body.byteLength
}

/** Content-Type of a structured or batch body: the one essence it must have, a UTF-8 charset. */
function checkFormatMediaType(contentType: string, essence: string): void {
  const mediaType = parseMediaType(contentType)
  if (mediaType === undefined) throw unsupportedMediaType(contentType, 'the Content-Type is not a well-formed media type')
  if (mediaType.essence !== essence) throw unsupportedMediaType(contentType, `meshlet reads the JSON event format only (${essence})`)
  if (!hasUtf8Charset(mediaType)) throw unsupportedMediaType(contentType, 'the JSON format is UTF-8; send charset=utf-8 or no charset')
}

/**
 * The events of an HTTP request or response. Throws MESHLET_ERR_EVENT_INVALID (400),
 * MESHLET_ERR_EVENT_TOO_LARGE (413) or MESHLET_ERR_UNSUPPORTED_MEDIA_TYPE (415), and nothing else.
 */
export function decodeHttpEvents(message: HttpMessageInput, options: HttpDecodeOptions = {}): DecodedHttpEvents {
  const limits = resolveLimits(options)
  const headers = readHeaders(message.headers)
  const body = message.body ?? ''
  const mode = contentModeOf(headers.contentType)
  if (mode === 'structured') {
    checkFormatMediaType(headers.contentType as string, STRUCTURED_ESSENCE)
    const size = bodySize(body)
    if (size > limits.maxEventSize) throw eventTooLarge('event', size, limits.maxEventSize, 'maxEventSize')
    const text = bodyText(body, 'event')
    return { mode, events: [eventFromJson(parseCheckedJson(text, limits, 1, 'event'), options)] }
  }
  if (mode === 'batch') {
    checkFormatMediaType(headers.contentType as string, BATCH_ESSENCE)
    const size = bodySize(body)
    if (size > limits.maxBatchSize) throw eventTooLarge('batch', size, limits.maxBatchSize, 'maxBatchSize')
    return { mode, events: parseJsonBatchText(bodyText(body, 'batch'), options) }
  }
  return { mode, events: [decodeBinary(headers, body, limits, options.extensionTypes)] }
}

function decodeBinary(headers: ReceivedHeaders, body: Uint8Array | string, limits: ResolvedLimits, extensionTypes: ExtensionTypes | undefined): DecodedEvent {
  const size = headers.size + bodySize(body)
  if (size > limits.maxEventSize) throw eventTooLarge('event', size, limits.maxEventSize, 'maxEventSize')
  const specversion = headers.ce.get('ce-specversion')
  if (specversion === undefined) {
    throw eventInvalid('specversion', 'required', 'no CloudEvent in this message: binary mode needs a ce-specversion header (with ce-id, ce-source, ce-type), structured mode a Content-Type of application/cloudevents+json')
  }
  checkSpecVersion(decodeHeaderValue('ce-specversion', specversion))
  const attributes: Record<string, unknown> = { specversion: '1.0' }
  for (const [header, raw] of headers.ce) {
    const name = header.slice(3)
    if (name === 'specversion') continue
    if (name === 'datacontenttype' || name === 'data') {
      throw eventInvalid(header, 'reserved', `${header} must not be sent in binary mode (HTTP binding 3.1): ${name === 'data' ? 'the data is the body' : 'Content-Type carries datacontenttype'}`)
    }
    if (!isAttributeName(name)) throw eventInvalid(header, 'name', `header ${header} names attribute ${JSON.stringify(name)}, but attribute names are lowercase letters a-z and digits 0-9 only`)
    const type = Object.hasOwn(CORE_ATTRIBUTE_TYPES, name)
      ? CORE_ATTRIBUTE_TYPES[name]
      : extensionTypes !== undefined && Object.hasOwn(extensionTypes, name) ? extensionTypes[name] : undefined
    attributes[name] = attributeFromString(name, decodeHeaderValue(header, raw), type)
  }
  checkRequired(attributes)
  let mediaType: MediaType | undefined
  if (headers.contentType !== undefined) {
    const contentType = headers.contentType.trim()
    attributes.datacontenttype = attributeFromString('datacontenttype', contentType, 'string')
    mediaType = parseMediaType(contentType)
  }
  const length = typeof body === 'string' ? body.length : body.byteLength
  if (length > 0) Object.assign(attributes, binaryData(body, mediaType, limits))
  return cloudEventOf(attributes)
}

/** The data of a binary-mode body: JSON parsed, UTF-8 text as a string, anything else as bytes. */
function binaryData(body: Uint8Array | string, mediaType: MediaType | undefined, limits: ResolvedLimits): { data: unknown; data_base64?: string } {
  if (mediaType !== undefined && hasUtf8Charset(mediaType) && (isJsonMediaType(mediaType) || isTextMediaType(mediaType))) {
    const text = bodyText(body, 'data')
    if (!isJsonMediaType(mediaType)) return { data: text }
    // The event object is depth 1 in the JSON format; data gets the same room as there.
    return { data: parseCheckedJson(text, { ...limits, maxJsonDepth: Math.max(1, limits.maxJsonDepth - 1) }, 0, 'data') }
  }
  const bytes = typeof body === 'string' ? new TextEncoder().encode(checkWellFormed(body, 'data')) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  return { data: bytes, data_base64: base64FromBytes(bytes) }
}

function checkEncodedSize(message: EncodedHttpMessage, limit: number): EncodedHttpMessage {
  let size = bodySize(message.body)
  for (const [name, value] of Object.entries(message.headers)) size += name.length + value.length
  if (size > limit) throw eventTooLarge('event', size, limit, 'maxEventSize')
  return message
}

/**
 * Binary mode: attributes as ce- headers (percent-encoded), datacontenttype as Content-Type, the
 * data as the body. JSON data (a JSON datacontenttype, or none: the format's default) is written
 * as JSON text, a string as UTF-8, a Uint8Array as is. An event without data has an empty body.
 */
export function encodeBinary(event: EventInput, options: HttpEncodeOptions = {}): EncodedHttpMessage {
  const limits = resolveLimits(options)
  const wire = toJsonObject(event)
  const headers: Record<string, string> = {}
  let contentType = typeof wire.datacontenttype === 'string' ? wire.datacontenttype : undefined
  for (const name of Object.keys(wire)) {
    if (name === 'data' || name === 'data_base64' || name === 'datacontenttype') continue
    headers[`ce-${name}`] = encodeHeaderValue(canonicalString(wire[name] as string | number | boolean))
  }
  let body: Uint8Array | string = ''
  const data = (event as Record<string, unknown>).data
  if (ArrayBuffer.isView(data)) body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  else if (data === undefined || data === null) {
    if (typeof wire.data_base64 === 'string') body = Buffer.from(wire.data_base64, 'base64')
  } else {
    const mediaType = contentType === undefined ? undefined : parseMediaType(contentType)
    if (mediaType === undefined) {
      contentType = 'application/json'
      body = jsonText(data, 'data')
    } else if (isJsonMediaType(mediaType)) body = jsonText(data, 'data')
    else if (typeof data === 'string' && hasUtf8Charset(mediaType)) body = data
    else {
      throw eventInvalid('data', 'representation', `data of type ${typeof data} cannot be the body of a ${contentType} event in binary mode; give it as a string (UTF-8 text) or a Uint8Array, use a JSON datacontenttype, or send it structured`)
    }
  }
  return checkEncodedSize({ headers: contentType === undefined ? headers : { 'content-type': contentType, ...headers }, body }, limits.maxEventSize)
}

/** Structured mode: the event as CloudEvents JSON, Content-Type application/cloudevents+json. */
export function encodeStructured(event: EventInput, options: HttpEncodeOptions = {}): EncodedHttpMessage {
  const limits = resolveLimits(options)
  return checkEncodedSize({ headers: { 'content-type': STRUCTURED_CONTENT_TYPE }, body: serializeJsonEvent(event) }, limits.maxEventSize)
}

/** Batched mode: a JSON array of events, each within maxEventSize, at most maxBatchEvents and maxBatchSize in all. */
export function encodeBatch(events: readonly EventInput[], options: HttpEncodeOptions = {}): EncodedHttpMessage {
  const limits = resolveLimits(options)
  if (events.length > limits.maxBatchEvents) throw eventTooLarge('batch', events.length, limits.maxBatchEvents, 'maxBatchEvents', 'events')
  let size = 2 + Math.max(0, events.length - 1)
  const parts = events.map((event, index) => {
    let text: string
    try {
      text = serializeJsonEvent(event)
    } catch (error) {
      throw atBatchIndex(error as MeshletError, index)
    }
    const eventSize = utf8ByteLength(text)
    if (eventSize > limits.maxEventSize) throw eventTooLarge(`batch[${index}] event`, eventSize, limits.maxEventSize, 'maxEventSize')
    size += eventSize
    return text
  })
  if (size > limits.maxBatchSize) throw eventTooLarge('batch', size, limits.maxBatchSize, 'maxBatchSize')
  return { headers: { 'content-type': BATCH_CONTENT_TYPE }, body: `[${parts.join(',')}]` }
}
