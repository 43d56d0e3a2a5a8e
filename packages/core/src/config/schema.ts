/**
 * A small schema language: one definition validates input (collecting every problem with its field
 * path) and exports JSON Schema for editors. Used for mesh options now and for control-plane
 * resources later, so client and server validate with the same rules.
 */
import type { ConfigIssue } from '../errors.js'
import { formatDuration, parseDuration } from './duration.js'

/** `T` is the checked, normalized value; `I` what a caller may write (a duration accepts `"2s"` as well as ms). */
export interface Schema<T, I = T> {
  /** Returns the value (normalized, defaults applied where the schema has them) or undefined after pushing issues. */
  check(value: unknown, path: string, issues: ConfigIssue[]): T | undefined
  jsonSchema(): Record<string, unknown>
  readonly description?: string | undefined
  /** Type-level only (never set): carries `I`. */
  readonly input?: I
}

export type Infer<S> = S extends Schema<infer T, unknown> ? T : never
export type InferInput<S> = S extends Schema<unknown, infer I> ? I : never

const MAX_STRING = 4096
const MAX_ITEMS = 10_000

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return value.length > 60 ? `a string of ${value.length} characters` : JSON.stringify(value)
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

export function string(opts: { pattern?: RegExp; patternHint?: string; maxLength?: number; minLength?: number; description?: string } = {}): Schema<string> {
  const max = opts.maxLength ?? MAX_STRING
  return {
    description: opts.description,
    check(v, path, issues) {
      if (typeof v !== 'string') return void issues.push({ path, message: `expected a string, got ${describe(v)}` })
      if (v.length < (opts.minLength ?? 0)) return void issues.push({ path, message: `must not be empty` })
      if (v.length > max) return void issues.push({ path, message: `is ${v.length} characters long; at most ${max} are allowed` })
      if (opts.pattern && !opts.pattern.test(v)) return void issues.push({ path, message: `${describe(v)} is not ${opts.patternHint ?? `matching ${opts.pattern}`}` })
      return v
    },
    jsonSchema: () => ({ type: 'string', maxLength: max, ...(opts.minLength ? { minLength: opts.minLength } : {}), ...(opts.pattern ? { pattern: opts.pattern.source } : {}), ...(opts.description ? { description: opts.description } : {}) }),
  }
}

export function oneOf<const T extends string>(values: readonly T[], description?: string): Schema<T> {
  return {
    description,
    check(v, path, issues) {
      if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T
      issues.push({ path, message: `${describe(v)} is not allowed; use one of ${values.map((x) => JSON.stringify(x)).join(', ')}` })
      return undefined
    },
    jsonSchema: () => ({ enum: [...values], ...(description ? { description } : {}) }),
  }
}

export function number(opts: { min?: number; max?: number; integer?: boolean; description?: string } = {}): Schema<number> {
  const kind = opts.integer ? 'an integer' : 'a number'
  return {
    description: opts.description,
    check(v, path, issues) {
      if (typeof v !== 'number' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) {
        return void issues.push({ path, message: `expected ${kind}, got ${describe(v)}` })
      }
      if (opts.min !== undefined && v < opts.min) return void issues.push({ path, message: `${v} is too small; the minimum is ${opts.min}` })
      if (opts.max !== undefined && v > opts.max) return void issues.push({ path, message: `${v} is too large; the maximum is ${opts.max}` })
      return v
    },
    jsonSchema: () => ({ type: opts.integer ? 'integer' : 'number', ...(opts.min !== undefined ? { minimum: opts.min } : {}), ...(opts.max !== undefined ? { maximum: opts.max } : {}), ...(opts.description ? { description: opts.description } : {}) }),
  }
}

export function boolean(description?: string): Schema<boolean> {
  return {
    description,
    check(v, path, issues) {
      if (typeof v === 'boolean') return v
      return void issues.push({ path, message: `expected true or false, got ${describe(v)}` })
    },
    jsonSchema: () => ({ type: 'boolean', ...(description ? { description } : {}) }),
  }
}

/** A duration such as `250ms`, `2s`, `1m30s`, or a number of milliseconds; normalized to milliseconds. */
export function duration(opts: { min?: number; max?: number; description?: string } = {}): Schema<number, number | string> {
  const min = opts.min ?? 0
  const max = opts.max ?? 24 * 3_600_000
  return {
    description: opts.description,
    check(v, path, issues) {
      const ms = parseDuration(v)
      if (ms === undefined) return void issues.push({ path, message: `${describe(v)} is not a duration; write it like "250ms", "2s", "1m30s" or a number of milliseconds` })
      if (ms < min) return void issues.push({ path, message: `${describe(v)} is too short; the minimum is ${formatDuration(min)}` })
      if (ms > max) return void issues.push({ path, message: `${describe(v)} is too long; the maximum is ${formatDuration(max)}` })
      return ms
    },
    jsonSchema: () => ({
      oneOf: [{ type: 'string', pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h))+$' }, { type: 'number', minimum: min, maximum: max }],
      ...(opts.description ? { description: opts.description } : {}),
    }),
  }
}

export function literal<const T extends string | number | boolean>(value: T): Schema<T> {
  return {
    check(v, path, issues) {
      if (v === value) return value
      return void issues.push({ path, message: `expected ${JSON.stringify(value)}, got ${describe(v)}` })
    },
    jsonSchema: () => ({ const: value }),
  }
}

export function array<T, I>(item: Schema<T, I>, opts: { maxItems?: number; minItems?: number; description?: string } = {}): Schema<T[], I[]> {
  const max = opts.maxItems ?? MAX_ITEMS
  return {
    description: opts.description,
    check(v, path, issues) {
      if (!Array.isArray(v)) return void issues.push({ path, message: `expected a list, got ${describe(v)}` })
      if (v.length > max) return void issues.push({ path, message: `has ${v.length} items; at most ${max} are allowed` })
      if (v.length < (opts.minItems ?? 0)) return void issues.push({ path, message: `needs at least ${opts.minItems} item${opts.minItems === 1 ? '' : 's'}` })
      const before = issues.length
      const out = v.map((x, i) => item.check(x, `${path}[${i}]`, issues))
      return issues.length === before ? (out as T[]) : undefined
    },
    jsonSchema: () => ({ type: 'array', items: item.jsonSchema(), maxItems: max, ...(opts.minItems ? { minItems: opts.minItems } : {}), ...(opts.description ? { description: opts.description } : {}) }),
  }
}

type Fields = Record<string, Schema<unknown>>
type ObjectOf<F extends Fields, R extends keyof F> = { [K in R]: Infer<F[K]> } & { [K in Exclude<keyof F, R>]?: Infer<F[K]> }
type ObjectInputOf<F extends Fields, R extends keyof F> = { [K in R]: InferInput<F[K]> } & { [K in Exclude<keyof F, R>]?: InferInput<F[K]> }

/** A closed object: unknown keys are errors (a typo in a policy must not be silently ignored). */
export function object<F extends Fields, R extends keyof F = never>(fields: F, opts: { required?: readonly R[]; description?: string } = {}): Schema<ObjectOf<F, R>, ObjectInputOf<F, R>> {
  const required = (opts.required ?? []) as readonly string[]
  const known = Object.keys(fields)
  return {
    description: opts.description,
    check(v, path, issues) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push({ path: path || '(root)', message: `expected an object, got ${describe(v)}` })
      const before = issues.length
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(v)) {
        if (!Object.hasOwn(fields, key)) {
          const near = known.find((k) => k.toLowerCase() === key.toLowerCase())
          issues.push({ path: join(path, key), message: `is not a known field${near ? `; did you mean "${near}"?` : `; known fields: ${known.join(', ')}`}` })
        }
      }
      for (const key of known) {
        const value = (v as Record<string, unknown>)[key]
        if (value === undefined) {
          if (required.includes(key)) issues.push({ path: join(path, key), message: 'is required' })
          continue
        }
        const checked = fields[key]!.check(value, join(path, key), issues)
        if (checked !== undefined) out[key] = checked
      }
      return issues.length === before ? (out as ObjectOf<F, R>) : undefined
    },
    jsonSchema: () => ({
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(known.map((k) => [k, fields[k]!.jsonSchema()])),
      ...(required.length ? { required: [...required] } : {}),
      ...(opts.description ? { description: opts.description } : {}),
    }),
  }
}

/** A map from names (validated by `key`) to values. */
export function record<T, I>(key: Schema<string>, value: Schema<T, I>, opts: { maxEntries?: number; description?: string } = {}): Schema<Record<string, T>, Record<string, I>> {
  const max = opts.maxEntries ?? 1000
  return {
    description: opts.description,
    check(v, path, issues) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push({ path, message: `expected an object, got ${describe(v)}` })
      const keys = Object.keys(v)
      if (keys.length > max) return void issues.push({ path, message: `has ${keys.length} entries; at most ${max} are allowed` })
      const before = issues.length
      const out: Record<string, T> = {}
      for (const k of keys) {
        key.check(k, join(path, k), issues)
        const checked = value.check((v as Record<string, unknown>)[k], join(path, k), issues)
        // Defined, not assigned: `out["__proto__"] = x` would set the prototype and drop the entry.
        if (checked !== undefined) Object.defineProperty(out, k, { value: checked, enumerable: true, writable: true, configurable: true })
      }
      return issues.length === before ? out : undefined
    },
    jsonSchema: () => ({ type: 'object', additionalProperties: value.jsonSchema(), maxProperties: max, ...(opts.description ? { description: opts.description } : {}) }),
  }
}

/**
 * Alternatives told apart by a cheap test on the raw value (so errors come from the branch the
 * user meant, not a list of every branch's complaint).
 */
export function either<A, AI, B, BI>(a: { when: (v: unknown) => boolean; schema: Schema<A, AI> }, b: Schema<B, BI>, description?: string): Schema<A | B, AI | BI> {
  return {
    description,
    check: (v, path, issues) => (a.when(v) ? a.schema.check(v, path, issues) : b.check(v, path, issues)),
    jsonSchema: () => ({ oneOf: [a.schema.jsonSchema(), b.jsonSchema()], ...(description ? { description } : {}) }),
  }
}

/** An empty key is shown as `""`, so its issue still has a path a reader can see. */
function join(path: string, key: string): string {
  const shown = key === '' ? '""' : key
  return path ? `${path}.${shown}` : shown
}
