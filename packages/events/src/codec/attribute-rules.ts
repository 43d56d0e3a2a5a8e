/**
 * CloudEvents v1.0.2 context attributes: which exist, their types (spec "Type System"), and the
 * rules a value of each type obeys. Wire values come as JSON values (structured mode, where
 * Boolean and Integer are JSON booleans and numbers) or as strings (binary-mode headers, the
 * canonical string forms). In memory an attribute is a string, except Integer (number), Boolean
 * (boolean) and Binary (Uint8Array); Timestamps stay the string that was sent (never re-formatted).
 */
import { eventInvalid } from './codec-errors.js'
import { parseMediaType } from './media-type.js'

export type AttributeType = 'boolean' | 'integer' | 'string' | 'binary' | 'uri' | 'uri-reference' | 'timestamp'

/** Types of known extension attributes (CloudEvents conformance "sample extension attributes"); undeclared extensions take their type from the JSON value, or are strings in headers. */
export type ExtensionTypes = Readonly<Record<string, AttributeType>>

export const REQUIRED_ATTRIBUTES = ['id', 'source', 'specversion', 'type'] as const
export const SPEC_VERSION = '1.0'

/** The core attributes other than `specversion` and their types; `datacontenttype` is also an RFC 2046 media type. */
export const CORE_ATTRIBUTE_TYPES: Readonly<Record<string, AttributeType>> = {
  id: 'string',
  source: 'uri-reference',
  type: 'string',
  datacontenttype: 'string',
  dataschema: 'uri',
  subject: 'string',
  time: 'timestamp',
}

const ATTRIBUTE_NAME = /^[a-z0-9]+$/
// Spec "String": no C0/C1 controls, no lone surrogates, no noncharacters.
const DISALLOWED_CHARACTER = /[\p{Cc}\p{Surrogate}\p{Noncharacter_Code_Point}]/u
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/
// Never in a URI (RFC 3986 section 2): controls, space and "<>\^`{|}; non-ASCII is let through as in IRIs.
const NOT_IN_URI = /[\p{Cc} "<>\\^`{|}]/u
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/
const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

/** Attribute names: lowercase ASCII letters and digits (spec "Attribute Naming Convention"); longer than 20 is allowed, as the spec only advises against it. */
export function isAttributeName(name: string): boolean {
  return ATTRIBUTE_NAME.test(name)
}

export function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value)
  if (m === null) return false
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false
  if (hour > 23 || minute > 59 || second > 60) return false
  if (m[8] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return false
  return true
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

export function isBase64(value: string): boolean {
  return BASE64.test(value)
}

export function isUriReference(value: string): boolean {
  return !NOT_IN_URI.test(value) && !BAD_PERCENT.test(value)
}

export function isAbsoluteUri(value: string): boolean {
  return URI_SCHEME.test(value) && isUriReference(value)
}

export function bytesFromBase64(value: string): Uint8Array {
  const buffer = Buffer.from(value, 'base64')
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

export function base64FromBytes(bytes: ArrayBufferView): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (ArrayBuffer.isView(value)) return 'binary'
  if (typeof value === 'number' && !Number.isInteger(value)) return `the number ${value}`
  return typeof value === 'object' ? 'an object' : `the ${typeof value} ${JSON.stringify(value)}`
}

/** The in-memory value of a string-typed wire value; `name` is the attribute. */
function checkString(name: string, type: AttributeType, value: string): string {
  if (value === '' && Object.hasOwn(CORE_ATTRIBUTE_TYPES, name)) {
    throw eventInvalid(name, 'non-empty', `${name} must not be empty`)
  }
  const bad = DISALLOWED_CHARACTER.exec(value)
  if (bad !== null) {
    const cp = bad[0].codePointAt(0) ?? 0
    throw eventInvalid(name, 'characters', `${name} holds U+${cp.toString(16).toUpperCase().padStart(4, '0')}, which a CloudEvents String may not contain (control characters, lone surrogates, noncharacters)`)
  }
  switch (type) {
    case 'uri':
      if (!isAbsoluteUri(value)) throw eventInvalid(name, 'uri', `${name} must be an absolute URI (RFC 3986, with a scheme), got ${JSON.stringify(value)}`)
      break
    case 'uri-reference':
      if (!isUriReference(value)) throw eventInvalid(name, 'uri-reference', `${name} must be a URI-reference (RFC 3986: no spaces, quotes, <>\\^\`{|} or stray '%'), got ${JSON.stringify(value)}`)
      break
    case 'timestamp':
      if (!isRfc3339(value)) throw eventInvalid(name, 'timestamp', `${name} must be an RFC 3339 timestamp such as 2018-04-05T17:31:00Z (seconds and an offset required), got ${JSON.stringify(value)}`)
      break
    default:
  }
  if (name === 'datacontenttype' && parseMediaType(value) === undefined) {
    throw eventInvalid(name, 'media-type', `datacontenttype must be an RFC 2046 media type such as application/json or text/plain; charset=utf-8, got ${JSON.stringify(value)}`)
  }
  return value
}

function checkInteger(name: string, value: number): number {
  if (!Number.isInteger(value)) throw eventInvalid(name, 'type', `${name} must be an Integer, got ${describe(value)}`)
  if (value < INT32_MIN || value > INT32_MAX) throw eventInvalid(name, 'integer-range', `${name} must be a 32-bit signed Integer (${INT32_MIN} to ${INT32_MAX}), got ${value}`)
  return value
}

function checkBinary(name: string, value: string): Uint8Array {
  if (!isBase64(value)) throw eventInvalid(name, 'base64', `${name} is Binary and must be base64 (RFC 4648, padded), got ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`)
  return bytesFromBase64(value)
}

/**
 * The in-memory value of an attribute read from the JSON format. `type` undefined means an
 * extension without a declared type: a string, an integer or a boolean, kept as such.
 */
export function attributeFromJson(name: string, value: unknown, type: AttributeType | undefined): unknown {
  if (type === undefined) {
    if (typeof value === 'string') return checkString(name, 'string', value)
    if (typeof value === 'boolean') return value
    if (typeof value === 'number') return checkInteger(name, value)
    throw eventInvalid(name, 'type', `${name} must be a string, an integer or a boolean (the CloudEvents type system has no ${describe(value)})`)
  }
  if (type === 'boolean') {
    if (typeof value !== 'boolean') throw eventInvalid(name, 'type', `${name} must be a JSON boolean, got ${describe(value)}`)
    return value
  }
  if (type === 'integer') {
    if (typeof value !== 'number') throw eventInvalid(name, 'type', `${name} must be a JSON number (Integer), got ${describe(value)}`)
    return checkInteger(name, value)
  }
  if (typeof value !== 'string') throw eventInvalid(name, 'type', `${name} must be a JSON string, got ${describe(value)}`)
  return type === 'binary' ? checkBinary(name, value) : checkString(name, type, value)
}

/** The in-memory value of an attribute read from its canonical string form (a decoded ce- header). */
export function attributeFromString(name: string, value: string, type: AttributeType | undefined): unknown {
  switch (type) {
    case 'boolean':
      if (value !== 'true' && value !== 'false') throw eventInvalid(name, 'type', `${name} is Boolean and must be "true" or "false", got ${JSON.stringify(value)}`)
      return value === 'true'
    case 'integer':
      if (!/^[+-]?\d{1,11}$/.test(value)) throw eventInvalid(name, 'type', `${name} is Integer and must be decimal digits, got ${JSON.stringify(value)}`)
      return checkInteger(name, Number(value))
    case 'binary':
      return checkBinary(name, value)
    default:
      return checkString(name, type ?? 'string', value)
  }
}

/**
 * The wire form of an in-memory attribute for encoding: strings (checked against their type),
 * integers, booleans, base64 for binary, ISO 8601 for a Date. Anything else is refused, so an
 * event that encodes is one that decodes.
 */
export function attributeToJson(name: string, value: unknown, type: AttributeType | undefined): string | number | boolean {
  if (ArrayBuffer.isView(value)) {
    if (type !== undefined && type !== 'binary') throw eventInvalid(name, 'type', `${name} must be a ${type}, got binary`)
    return base64FromBytes(value)
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw eventInvalid(name, 'timestamp', `${name} is an invalid Date`)
    return value.toISOString()
  }
  if (type === 'binary' && typeof value === 'string') {
    checkBinary(name, value)
    return value
  }
  return attributeFromJson(name, value, type) as string | number | boolean
}

/** The canonical string form of a wire value, for a ce- header. */
export function canonicalString(value: string | number | boolean): string {
  return typeof value === 'string' ? value : String(value)
}
