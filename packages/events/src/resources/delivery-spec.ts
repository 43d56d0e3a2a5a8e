/**
 * Knative's DeliverySpec and Destination as schemas, and the ISO 8601 durations they carry
 * (`PT0.2S`, `PT1M`, `P1D`). Durations stay strings in a validated spec, as Knative writes them;
 * `parseIsoDuration` turns one into milliseconds where it is used.
 */
import { schema as s, type ConfigIssue } from '@meshlet/core'
import type { DeliverySpec, Destination } from './event-specs.js'

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const NAME_HINT = 'a DNS label (lowercase letters, digits and "-", at most 63 characters, starting and ending with a letter or digit)'

/**
 * Days, hours, minutes and seconds; each a whole number of at most 9 digits, and the last one
 * given may carry a fraction of at most 9 digits (ISO 8601 allows a fraction on the smallest unit
 * only). Years, months and weeks are refused: a retry delay has no calendar.
 */
const ISO_DURATION = /^P(?:(\d{1,9})D)?(?:T(?:(\d{1,9}(?:[.,]\d{1,9})?)H)?(?:(\d{1,9}(?:[.,]\d{1,9})?)M)?(?:(\d{1,9}(?:[.,]\d{1,9})?)S)?)?$/
const UNIT_MS = [86_400_000, 3_600_000, 60_000, 1000]

/**
 * Milliseconds of an ISO 8601 duration such as `PT0.2S`, `PT1M30S` or `P1D` (rounded to the
 * nearest millisecond), or undefined when `text` is not one (`1s`, `PT`, `P1Y`, `-PT1S`, a fraction
 * before the last unit, more than 9 digits in a part).
 */
export function parseIsoDuration(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined
  const m = ISO_DURATION.exec(text)
  if (m === null) return undefined
  const parts = m.slice(1, 5)
  const given = parts.flatMap((p, i) => (p === undefined ? [] : [i]))
  if (given.length === 0 || (text.includes('T') && given.every((i) => i === 0))) return undefined
  const last = given[given.length - 1]!
  let ms = 0
  for (const i of given) {
    const p = parts[i]!.replace(',', '.')
    if (i !== last && p.includes('.')) return undefined
    ms += Number(p) * UNIT_MS[i]!
  }
  return Math.round(ms)
}

function formatMs(ms: number): string {
  return ms % 3_600_000 === 0 ? `PT${ms / 3_600_000}H` : ms % 60_000 === 0 ? `PT${ms / 60_000}M` : `PT${ms / 1000}S`
}

/** An ISO 8601 duration between `min` and `max` milliseconds; the checked value is the string as written. */
export function isoDuration(opts: { min?: number; max?: number; description?: string } = {}): s.Schema<string> {
  const min = opts.min ?? 0
  const max = opts.max ?? 24 * 3_600_000
  return {
    description: opts.description,
    check(v: unknown, path: string, issues: ConfigIssue[]) {
      const ms = parseIsoDuration(v)
      const shown = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : `${v === null ? 'null' : typeof v} ${String(v).slice(0, 40)}`
      if (ms === undefined) return void issues.push({ path, message: `${shown} is not an ISO 8601 duration; write it like "PT0.2S", "PT30S", "PT1M30S" or "P1D"` })
      if (ms < min) return void issues.push({ path, message: `${shown} is too short; the minimum is ${formatMs(min)}` })
      if (ms > max) return void issues.push({ path, message: `${shown} is too long; the maximum is ${formatMs(max)}` })
      return v as string
    },
    jsonSchema: () => ({ type: 'string', pattern: ISO_DURATION.source, ...(opts.description ? { description: opts.description } : {}) }),
  }
}

const refSchema = s.object(
  {
    apiVersion: s.string({ maxLength: 253, description: 'Accepted for Knative compatibility and ignored: a ref names a mesh service.' }),
    kind: s.oneOf(['Service'] as const, 'Only mesh services can be referenced.'),
    name: s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63, description: 'The mesh service.' }),
    namespace: s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63, description: "Default: the resource's namespace." }),
  },
  { required: ['name'] },
)

const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/

/** Where events go: a mesh service (`ref`, with `uri` as a path on it) or an absolute http(s) `uri`. */
export const destinationSchema: s.Schema<Destination> = {
  description: 'A mesh service (ref, with uri as a path on it) or an absolute http(s) uri.',
  check(v, path, issues) {
    const before = issues.length
    const base = s.object({ ref: refSchema, uri: s.string({ maxLength: 2048, minLength: 1 }) }).check(v, path, issues)
    if (base === undefined || issues.length > before) return undefined
    const { ref, uri } = base
    if (ref === undefined && uri === undefined) return void issues.push({ path, message: 'needs ref (a mesh service) or uri (an absolute http or https URL)' })
    if (uri !== undefined) {
      if (ref !== undefined && !PATH.test(uri)) return void issues.push({ path: `${path}.uri`, message: `${JSON.stringify(uri.slice(0, 60))}: with a ref, uri is the path on that service and must start with "/"` })
      if (ref === undefined && !isHttpUrl(uri)) return void issues.push({ path: `${path}.uri`, message: `${JSON.stringify(uri.slice(0, 60))} is not an absolute http or https URL (or give a ref to a mesh service)` })
    }
    return base as Destination
  },
  jsonSchema: () => ({
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: { ref: refSchema.jsonSchema(), uri: { type: 'string', maxLength: 2048 } },
    description: 'A mesh service (ref, with uri as a path on it) or an absolute http(s) uri.',
  }),
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text)
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== ''
  } catch {
    return false
  }
}

export const MAX_RETRY = 100

export const deliverySpecSchema: s.Schema<DeliverySpec> = s.object(
  {
    retry: s.number({ integer: true, min: 0, max: MAX_RETRY, description: 'Retries after the first attempt.' }),
    backoffPolicy: s.oneOf(['linear', 'exponential'] as const, 'linear: delay × n; exponential: delay × 2^n (the default).'),
    backoffDelay: isoDuration({ max: 3_600_000, description: 'The base delay between attempts (ISO 8601, e.g. PT0.2S).' }),
    timeout: isoDuration({ min: 1, max: 24 * 3_600_000, description: 'The time one attempt may take (ISO 8601, e.g. PT30S).' }),
    retryAfterMax: isoDuration({ max: 24 * 3_600_000, description: 'The most a Retry-After header may delay the next attempt (ISO 8601).' }),
    deadLetterSink: destinationSchema,
  },
  { description: 'How events are delivered: retries, backoff, per-attempt timeout, dead letter sink.' },
) as s.Schema<DeliverySpec>
