/**
 * The CloudEvents JSON event format (spec v1.0.2 json-format.md) and its batch form
 * (`application/cloudevents-batch+json`): parsing, validation and serialization.
 *
 * Decoding never invents anything: an event without `time` has none (the SDK's constructor
 * would stamp "now", and a random id for a missing one). That is why decoded events are built
 * on CloudEvent.prototype directly instead of through its constructor; they are frozen like the
 * SDK's, `instanceof CloudEvent` holds, and their `toJSON` is this format (the SDK's throws
 * for an event without time and re-formats the time it has).
 *
 * In memory: `data` is the JSON value of `data`, or a Uint8Array for `data_base64` (then
 * `data_base64` holds the base64 text too, as the SDK keeps it); a `null` attribute or data is
 * absent, as the format says.
 */
import { CloudEvent, type CloudEventV1 } from 'cloudevents'
import type { MeshletError } from '@meshlet/core'
import {
  attributeFromJson, attributeToJson, base64FromBytes, bytesFromBase64, CORE_ATTRIBUTE_TYPES,
  isAttributeName, isBase64, REQUIRED_ATTRIBUTES, SPEC_VERSION, type ExtensionTypes,
} from './attribute-rules.js'
import { atBatchIndex, eventInvalid, eventTooLarge } from './codec-errors.js'
import { resolveLimits, type CodecLimits, type ResolvedLimits } from './event-limits.js'
import { scanJsonStructure } from './json-structure.js'
import { decodeUtf8, utf8SizeOver } from './utf8-text.js'

export interface JsonFormatOptions {
  /** Types of known extension attributes: their values are checked (and Binary decoded to a Uint8Array). */
  extensionTypes?: ExtensionTypes
}

export type JsonDecodeOptions = JsonFormatOptions & CodecLimits

/** A decoded event: attributes, extensions and data, as the SDK's CloudEvent type describes them. */
export type DecodedEvent = CloudEvent<unknown>

/** What encoders take: a CloudEvent, or any object with its attributes. */
export type EventInput = CloudEventV1<unknown>

// toJSON: this format (the SDK's throws without a time). cloneWith: the SDK's goes through the
// constructor, which would stamp a time on a received event that had none; this one adds nothing.
const decodedEventPrototype: object = Object.create(CloudEvent.prototype, {
  toJSON: {
    value: function toJSON(this: EventInput): Record<string, unknown> {
      return toJsonObject(this)
    },
    writable: true,
    configurable: true,
  },
  cloneWith: {
    value: function cloneWith(this: EventInput, changes: Partial<EventInput>, strict = true): DecodedEvent {
      return withAttributes(this, changes, strict)
    },
    writable: true,
    configurable: true,
  },
})

/**
 * The in-memory event of attributes the codec has validated (names checked, values in their
 * in-memory types). No attribute is added; the result is frozen.
 */
export function cloudEventOf(attributes: Readonly<Record<string, unknown>>): DecodedEvent {
  const event = Object.create(decodedEventPrototype) as Record<string, unknown>
  for (const key of Object.keys(attributes)) event[key] = attributes[key]
  return Object.freeze(event) as unknown as DecodedEvent
}

/**
 * A copy of `event` with `changes` applied (an undefined or null change removes the attribute).
 * With `strict` (the default) the result is checked as an encoder checks it. Nothing is invented.
 */
export function withAttributes(event: EventInput, changes: Readonly<Record<string, unknown>>, strict = true): DecodedEvent {
  const merged: Record<string, unknown> = {}
  for (const source of [event as Record<string, unknown>, changes]) {
    for (const key of Object.keys(source)) {
      const value = source[key]
      if (value === undefined || value === null) delete merged[key]
      else merged[key] = value
    }
  }
  // Changed data invalidates the kept base64 text; binary data gets its own.
  if (Object.hasOwn(changes, 'data') && !Object.hasOwn(changes, 'data_base64')) {
    delete merged.data_base64
    if (ArrayBuffer.isView(merged.data)) merged.data_base64 = base64FromBytes(merged.data)
  }
  if (strict) toJsonObject(merged as EventInput)
  return cloudEventOf(merged)
}

function kindOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** Refuses a missing, mistyped, empty or unsupported specversion; the first check, as it decides the rest. */
export function checkSpecVersion(value: unknown): void {
  if (value === undefined || value === null) throw eventInvalid('specversion', 'required', 'specversion is required (use "1.0")')
  if (typeof value !== 'string') throw eventInvalid('specversion', 'type', `specversion must be the string "1.0", got ${kindOf(value)}`)
  if (value === '') throw eventInvalid('specversion', 'non-empty', 'specversion must not be empty (use "1.0")')
  if (value !== SPEC_VERSION) throw eventInvalid('specversion', 'specversion', `specversion ${JSON.stringify(value)} is not supported; meshlet reads and writes CloudEvents 1.0`)
}

export function checkRequired(attributes: Readonly<Record<string, unknown>>): void {
  for (const name of REQUIRED_ATTRIBUTES) {
    const value = attributes[name]
    if (value === undefined || value === null) throw eventInvalid(name, 'required', `${name} is required`)
  }
}

function extensionType(options: JsonFormatOptions, name: string): ExtensionTypes[string] | undefined {
  const types = options.extensionTypes
  return types !== undefined && Object.hasOwn(types, name) ? types[name] : undefined
}

function checkExtensionName(name: string): void {
  if (!isAttributeName(name)) {
    throw eventInvalid(name, 'name', `attribute name ${JSON.stringify(name)} is not allowed: names are lowercase letters a-z and digits 0-9 only`)
  }
}

/** The event a parsed JSON value stands for; refuses anything that is not a valid CloudEvents 1.0 JSON event. */
export function eventFromJson(value: unknown, options: JsonFormatOptions = {}): DecodedEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw eventInvalid('event', 'object', `an event is a JSON object, got ${kindOf(value)}`)
  }
  const wire = value as Record<string, unknown>
  checkSpecVersion(Object.hasOwn(wire, 'specversion') ? wire.specversion : undefined)
  for (const name of REQUIRED_ATTRIBUTES) {
    if (!Object.hasOwn(wire, name) || wire[name] === null) throw eventInvalid(name, 'required', `${name} is required`)
  }
  const attributes: Record<string, unknown> = {}
  let data: unknown
  let dataBase64: unknown
  for (const name of Object.keys(wire)) {
    const member = wire[name]
    if (member === null) continue
    if (name === 'specversion') attributes.specversion = member
    else if (name === 'data') data = member
    else if (name === 'data_base64') dataBase64 = member
    else if (Object.hasOwn(CORE_ATTRIBUTE_TYPES, name)) attributes[name] = attributeFromJson(name, member, CORE_ATTRIBUTE_TYPES[name])
    else {
      checkExtensionName(name)
      attributes[name] = attributeFromJson(name, member, extensionType(options, name))
    }
  }
  if (data !== undefined && dataBase64 !== undefined) {
    throw eventInvalid('data', 'exclusive', 'data and data_base64 are both present; send one: data for JSON or text, data_base64 for binary')
  }
  if (dataBase64 !== undefined) {
    if (typeof dataBase64 !== 'string') throw eventInvalid('data_base64', 'type', `data_base64 must be a base64 string, got ${kindOf(dataBase64)}`)
    if (!isBase64(dataBase64)) throw eventInvalid('data_base64', 'base64', 'data_base64 is not base64 (RFC 4648, padded)')
    attributes.data = bytesFromBase64(dataBase64)
    attributes.data_base64 = dataBase64
  } else if (data !== undefined) {
    attributes.data = data
  }
  return cloudEventOf(attributes)
}

/**
 * The JSON-format object of an event, every attribute checked as on decode (so what encodes,
 * decodes). Binary data goes to `data_base64`; Dates become RFC 3339 text.
 */
export function toJsonObject(event: EventInput): Record<string, unknown> {
  if (typeof event !== 'object' || event === null) throw eventInvalid('event', 'object', `an event is an object, got ${kindOf(event)}`)
  const source = event as Record<string, unknown>
  checkSpecVersion(source.specversion)
  checkRequired(source)
  const out: Record<string, unknown> = {}
  for (const name of Object.keys(source)) {
    const value = source[name]
    if (value === undefined || value === null || name === 'data' || name === 'data_base64') continue
    if (name === 'specversion') out.specversion = value
    else if (Object.hasOwn(CORE_ATTRIBUTE_TYPES, name)) out[name] = attributeToJson(name, value, CORE_ATTRIBUTE_TYPES[name])
    else {
      checkExtensionName(name)
      out[name] = attributeToJson(name, value, undefined)
    }
  }
  const data = source.data
  const dataBase64 = source.data_base64
  if (ArrayBuffer.isView(data)) out.data_base64 = base64FromBytes(data)
  else if (data !== undefined && data !== null) {
    if (dataBase64 !== undefined && dataBase64 !== null) {
      throw eventInvalid('data', 'exclusive', 'the event has data that is not binary and also data_base64; keep one')
    }
    out.data = data
  } else if (dataBase64 !== undefined && dataBase64 !== null) {
    if (typeof dataBase64 !== 'string' || !isBase64(dataBase64)) throw eventInvalid('data_base64', 'base64', 'data_base64 must be a base64 string (RFC 4648, padded)')
    out.data_base64 = dataBase64
  }
  return out
}

/** JSON text of a value, refusing what JSON cannot carry (BigInt, cycles, nesting deep enough to overflow the stack). */
export function jsonText(value: unknown, attribute: string): string {
  try {
    const text = JSON.stringify(value) as string | undefined
    if (text === undefined) throw new TypeError(`${kindOf(value)} has no JSON form`)
    return text
  } catch (error) {
    throw eventInvalid(attribute, 'representation', `${attribute} cannot be written as JSON (${(error as Error).message}); give JSON-compatible data or a Uint8Array`)
  }
}

export function serializeJsonEvent(event: EventInput): string {
  return jsonText(toJsonObject(event), 'data')
}

/** JSON text of a batch: `[event, …]`. Each event is checked as serializeJsonEvent checks it. */
export function serializeJsonBatch(events: readonly EventInput[]): string {
  return `[${events.map((event, index) => {
    try {
      return serializeJsonEvent(event)
    } catch (error) {
      throw atBatchIndex(error as MeshletError, index)
    }
  }).join(',')}]`
}

function parseJsonValue(text: string, attribute: string, index?: number): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw eventInvalid(attribute, 'json', `the ${attribute === 'data' ? 'data is declared JSON but' : 'body'} is not JSON (${(error as Error).message})`, index)
  }
}

/** Parses JSON text with the structure checks (depth; repeated member names at `eventDepth`). */
export function parseCheckedJson(text: string, limits: ResolvedLimits, eventDepth: 0 | 1 | 2, attribute: string): unknown {
  const value = parseJsonValue(text, attribute)
  scanJsonStructure(text, { maxDepth: limits.maxJsonDepth, eventDepth })
  return value
}

/** One event from JSON text (structured mode's body). */
export function parseJsonEventText(text: string, options: JsonDecodeOptions = {}): DecodedEvent {
  const limits = resolveLimits(options)
  const size = utf8SizeOver(text, limits.maxEventSize)
  if (size > 0) throw eventTooLarge('event', size, limits.maxEventSize, 'maxEventSize')
  return eventFromJson(parseCheckedJson(text, limits, 1, 'event'), options)
}

/** A batch from JSON text: an array of event objects, each valid and within maxEventSize. */
export function parseJsonBatchText(text: string, options: JsonDecodeOptions = {}): DecodedEvent[] {
  const limits = resolveLimits(options)
  const size = utf8SizeOver(text, limits.maxBatchSize)
  if (size > 0) throw eventTooLarge('batch', size, limits.maxBatchSize, 'maxBatchSize')
  const value = parseJsonValue(text, 'batch')
  if (!Array.isArray(value)) throw eventInvalid('batch', 'array', `a batch is a JSON array of event objects, got ${kindOf(value)}`)
  if (value.length > limits.maxBatchEvents) throw eventTooLarge('batch', value.length, limits.maxBatchEvents, 'maxBatchEvents', 'events')
  const spans = scanJsonStructure(text, { maxDepth: limits.maxJsonDepth + 1, eventDepth: 2 })
  return value.map((element: unknown, index) => {
    const span = spans[index]
    if (span !== undefined) {
      const eventSize = utf8SizeOver(text.slice(span[0], span[1]), limits.maxEventSize)
      if (eventSize > 0) throw eventTooLarge(`batch[${index}] event`, eventSize, limits.maxEventSize, 'maxEventSize')
    }
    try {
      return eventFromJson(element, options)
    } catch (error) {
      throw atBatchIndex(error as MeshletError, index)
    }
  })
}

const utf8 = new TextEncoder()

/** The event as the broker stores it: CloudEvents JSON, UTF-8. */
export function toStructuredBytes(event: EventInput): Uint8Array {
  return utf8.encode(serializeJsonEvent(event))
}

/**
 * The event of bytes toStructuredBytes wrote. Attributes are checked again (storage can rot);
 * size and structure limits are not, as they held when the event was taken in.
 */
export function fromStructuredBytes(bytes: Uint8Array, options: JsonFormatOptions = {}): DecodedEvent {
  return eventFromJson(parseJsonValue(decodeUtf8(bytes, 'event'), 'event'), options)
}

