/**
 * The dispatcher's fast path from a stored event to the binary-mode message a subscriber gets:
 * one JSON.parse of the stored bytes and a direct walk over its members, instead of the codec's
 * decode (full re-validation into a CloudEvent) followed by its encode (validation again).
 *
 * Why that is sound: the stored bytes are what `toStructuredBytes` wrote after the ingress (or the
 * reply path) validated the event, and the log's per-record CRC32 catches storage damage before
 * they get here. What is still checked is what the message's safety rests on: a JSON object,
 * specversion 1.0, id/source/type non-empty strings, attribute names `[a-z0-9]+` (they become
 * header names), attribute values strings, integers or booleans (header values are
 * percent-encoded as the binding says, so no value can break a header).
 *
 * `readStoredEvent` returns undefined for anything outside the common shapes (a datacontenttype
 * whose data is neither JSON nor UTF-8 text, a core attribute that is not a string, a damaged
 * record): the caller then takes the codec's path, which decodes it or says why it cannot.
 */
import { isAttributeName } from '../../codec/attribute-rules.js'
import { encodeHeaderValue } from '../../codec/header-encoding.js'
import { hasUtf8Charset, isJsonMediaType, parseMediaType } from '../../codec/media-type.js'
import type { EncodedMessage } from './subscriber-request.js'

/** A stored event's JSON-format members as parsed: what filters read (they ignore data and data_base64). */
export type StoredEvent = Readonly<Record<string, unknown>>

/** The core attributes besides specversion: every one is a string in the JSON format, so any other value is damage. */
const CORE_STRING_ATTRIBUTES = new Set(['id', 'source', 'type', 'datacontenttype', 'dataschema', 'subject', 'time'])

/** How a datacontenttype's data goes into a binary-mode body; cached, as a broker sees few distinct types. */
type BodyKind = 'json' | 'text' | 'other'
const bodyKinds = new Map<string, BodyKind>()
const MAX_CACHED_CONTENT_TYPES = 256

function bodyKindOf(contentType: string): BodyKind {
  let kind = bodyKinds.get(contentType)
  if (kind !== undefined) return kind
  const media = parseMediaType(contentType)
  kind = media === undefined ? 'other' : isJsonMediaType(media) ? 'json' : hasUtf8Charset(media) ? 'text' : 'other'
  if (bodyKinds.size >= MAX_CACHED_CONTENT_TYPES) bodyKinds.clear()
  bodyKinds.set(contentType, kind)
  return kind
}

/** The stored event's members, or undefined when it is not one this fast path takes (the codec decides then). */
export function readStoredEvent(bytes: Uint8Array): StoredEvent | undefined {
  let wire: unknown
  try {
    wire = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof wire !== 'object' || wire === null || Array.isArray(wire)) return undefined
  const event = wire as Record<string, unknown>
  if (event.specversion !== '1.0' || !nonEmptyString(event.id) || !nonEmptyString(event.source) || !nonEmptyString(event.type)) return undefined
  for (const name in event) {
    if (name === 'data' || name === 'data_base64') continue
    const value = event[name]
    if (!isAttributeName(name)) return undefined
    if (typeof value === 'string') continue
    if (CORE_STRING_ATTRIBUTES.has(name)) return undefined
    if (typeof value !== 'boolean' && !(typeof value === 'number' && Number.isInteger(value))) return undefined
  }
  const data = event.data
  const base64 = event.data_base64
  if (base64 !== undefined && (data !== undefined || typeof base64 !== 'string')) return undefined
  if (data !== undefined && data !== null) {
    const contentType = event.datacontenttype as string | undefined
    const kind = contentType === undefined ? 'json' : bodyKindOf(contentType)
    if (kind === 'other' || (kind === 'text' && typeof data !== 'string')) return undefined
  }
  return event
}

/**
 * The binary-mode message of a stored event (HTTP binding 3.1): attributes as ce- headers,
 * datacontenttype as Content-Type (application/json for JSON data without one, the JSON format's
 * default), data as the body. `omit` is an attribute left out (the broker's TTL).
 */
export function binaryMessageOf(event: StoredEvent, omit: string): EncodedMessage {
  const headers: Record<string, string> = {}
  let contentType: string | undefined
  for (const name in event) {
    if (name === 'data' || name === 'data_base64' || name === omit) continue
    const value = event[name]
    if (value === undefined || value === null) continue
    const text = typeof value === 'string' ? value : String(value)
    if (name === 'datacontenttype') contentType = text
    else headers[`ce-${name}`] = encodeHeaderValue(text)
  }
  const data = event.data
  let body: Uint8Array | string = ''
  if (typeof event.data_base64 === 'string') body = Buffer.from(event.data_base64, 'base64')
  else if (data !== undefined && data !== null) {
    if (contentType === undefined) contentType = 'application/json'
    body = bodyKindOf(contentType) === 'json' ? JSON.stringify(data) : (data as string)
  }
  if (contentType !== undefined) headers['content-type'] = contentType
  return { headers, body }
}

function nonEmptyString(value: unknown): boolean {
  return typeof value === 'string' && value !== ''
}
