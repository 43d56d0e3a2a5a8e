/**
 * How filters read a CloudEvent's context attributes and extensions. An event is the `cloudevents`
 * SDK's in-memory shape (`CloudEventV1`, or a `CloudEvent`): attributes and extensions are its own
 * properties. `data` and `data_base64` are the payload, never attributes; absent, `undefined` and
 * `null` all mean the attribute is missing.
 */

/** A CloudEvent as filters take it: `CloudEventV1<unknown>` and `CloudEvent` instances fit. */
export type FilterableEvent = Readonly<Record<string, unknown>>

const PAYLOAD = new Set(['data', 'data_base64'])

/** The raw value of attribute `name`, or undefined when the event does not have it. */
export function rawAttribute(event: FilterableEvent, name: string): unknown {
  if (PAYLOAD.has(name) || !Object.hasOwn(event, name)) return undefined
  const v = event[name]
  return v === null ? undefined : v
}

/**
 * An attribute as CESQL sees it (spec §3.2): Boolean, a 32-bit Integer, or else a String (URIs and
 * timestamps are strings; a binary extension is base64; a Date is its ISO 8601 form).
 */
export function cesqlAttribute(event: FilterableEvent, name: string): boolean | number | string | undefined {
  const v = rawAttribute(event, name)
  if (v === undefined || typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2_147_483_648 && v <= 2_147_483_647) return v
  return attributeText(v)
}

/** An attribute as the string filters (exact, prefix, suffix, legacy attributes) compare it: its canonical string form. */
export function stringAttribute(event: FilterableEvent, name: string): string | undefined {
  const v = rawAttribute(event, name)
  return v === undefined ? undefined : attributeText(v)
}

function attributeText(v: unknown): string {
  if (typeof v === 'string') return v
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString()
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  if (typeof v === 'object') {
    try {
      return JSON.stringify(v) ?? String(v)
    } catch {
      return String(v)
    }
  }
  return String(v)
}
