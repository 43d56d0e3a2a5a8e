/**
 * Validation of a Trigger's `filter` and `filters` (Knative's field names), shared by the Trigger
 * kind, advertised triggers and `compileFilter`, so that anything that validates also compiles.
 * Problems name the entry (`spec.filters[1].any[0]`) and what is wrong with it; a CESQL expression
 * that does not parse is refused with the column of the problem, and one that calls a function
 * the engine does not have is refused too (it could never match).
 */
import { schema as s, type ConfigIssue } from '@meshlet/core'
import type { AttributesFilter, FilterSpec, SubscriptionsFilter } from '../resources/event-specs.js'
import { compileCesql } from './cesql/cesql-expression.js'
import { MAX_EXPRESSION_LENGTH } from './cesql/cesql-parser.js'

/** Knative's rule for attribute names in filters: a lowercase letter, then lowercase letters and digits. */
export const FILTER_ATTRIBUTE_NAME = /^[a-z][a-z0-9]*$/
const ATTRIBUTE_HINT = 'a CloudEvents attribute name (a lowercase letter, then lowercase letters and digits)'
/** How deep all/any/not may nest, and how many entries one list may hold. */
export const MAX_FILTER_DEPTH = 16
export const MAX_FILTER_ENTRIES = 64

export const DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'cesql'] as const
export type Dialect = (typeof DIALECTS)[number]

const attributeName = s.string({ pattern: FILTER_ATTRIBUTE_NAME, patternHint: ATTRIBUTE_HINT, maxLength: 63 })
const attributeValue = s.string({ maxLength: 4096 })

export const attributesFilterSchema: s.Schema<AttributesFilter> = s.object(
  {
    attributes: s.record(attributeName, attributeValue, {
      maxEntries: 64,
      description: 'Every attribute must equal its value exactly; an empty value means the attribute must be present.',
    }),
  },
  { required: ['attributes'], description: 'Legacy Knative filter (exact match on attributes); ignored when `filters` is not empty.' },
)

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? 'a string' : typeof v
}

/** `exact`, `prefix` and `suffix` each take exactly one attribute (the Subscriptions API and Knative's rule). */
function checkSingleAttribute(v: unknown, path: string, dialect: Dialect, issues: ConfigIssue[]): Record<string, string> | undefined {
  const before = issues.length
  const out = s.record(attributeName, attributeValue, { maxEntries: 64 }).check(v, path, issues)
  if (out === undefined || issues.length > before) return undefined
  const n = Object.keys(out).length
  if (n !== 1) return void issues.push({ path, message: `${dialect} takes exactly one attribute, got ${n === 0 ? 'none' : `${n} (${Object.keys(out).join(', ')})`}; use one entry per attribute (entries are ANDed) or all: [...]` })
  return out
}

function checkCesql(v: unknown, path: string, issues: ConfigIssue[]): string | undefined {
  const text = s.string({ maxLength: MAX_EXPRESSION_LENGTH, minLength: 1 }).check(v, path, issues)
  if (text === undefined) return undefined
  const c = compileCesql(text)
  if (!c.ok) return void issues.push({ path, message: `is not a valid CESQL expression: ${c.error.message}` })
  const [unknown] = c.expression.unknownFunctions
  if (unknown !== undefined) {
    return void issues.push({ path, message: `calls ${unknown.name} with ${unknown.arity} argument${unknown.arity === 1 ? '' : 's'} at column ${unknown.position + 1}, which is not a CESQL function (or not with that many arguments); the filter could never match` })
  }
  return text
}

function checkFilterList(v: unknown, path: string, depth: number, issues: ConfigIssue[]): SubscriptionsFilter[] | undefined {
  if (!Array.isArray(v)) return void issues.push({ path, message: `expected a list of filters, got ${describe(v)}` })
  if (v.length > MAX_FILTER_ENTRIES) return void issues.push({ path, message: `has ${v.length} entries; at most ${MAX_FILTER_ENTRIES} are allowed` })
  const before = issues.length
  const out = v.map((x, i) => checkFilter(x, `${path}[${i}]`, depth, issues))
  return issues.length === before ? (out as SubscriptionsFilter[]) : undefined
}

/** One `filters` entry; `depth` counts the all/any/not around it. */
function checkFilter(v: unknown, path: string, depth: number, issues: ConfigIssue[]): SubscriptionsFilter | undefined {
  if (depth > MAX_FILTER_DEPTH) return void issues.push({ path, message: `filters nest more than ${MAX_FILTER_DEPTH} levels deep (all, any, not)` })
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push({ path, message: `expected a filter (an object with one of ${DIALECTS.join(', ')}), got ${describe(v)}` })
  const keys = Object.keys(v)
  const unknown = keys.filter((k) => !(DIALECTS as readonly string[]).includes(k))
  const dialects = keys.filter((k): k is Dialect => (DIALECTS as readonly string[]).includes(k))
  const before = issues.length
  for (const k of unknown) issues.push({ path: `${path}.${k}`, message: `is not a filter dialect; use one of ${DIALECTS.join(', ')}` })
  if (dialects.length !== 1) {
    issues.push({ path, message: dialects.length === 0 ? `needs exactly one dialect (${DIALECTS.join(', ')}), got none` : `has ${dialects.length} dialects (${dialects.join(', ')}); an entry takes exactly one: split it into separate entries (entries are ANDed)` })
  }
  if (issues.length > before) return undefined
  const dialect = dialects[0]!
  const value = (v as Record<string, unknown>)[dialect]
  const at = `${path}.${dialect}`
  switch (dialect) {
    case 'exact':
    case 'prefix':
    case 'suffix': {
      const attrs = checkSingleAttribute(value, at, dialect, issues)
      return attrs && ({ [dialect]: attrs } as SubscriptionsFilter)
    }
    case 'all':
    case 'any': {
      const list = checkFilterList(value, at, depth + 1, issues)
      if (list !== undefined && list.length === 0) return void issues.push({ path: at, message: `needs at least one filter (an empty ${dialect} is ambiguous: write the filters, or remove the entry)` })
      return list && ({ [dialect]: list } as SubscriptionsFilter)
    }
    case 'not': {
      const inner = checkFilter(value, at, depth + 1, issues)
      return inner && { not: inner }
    }
    case 'cesql': {
      const text = checkCesql(value, at, issues)
      return text === undefined ? undefined : { cesql: text }
    }
  }
}

function filterJsonSchema(depth: number): Record<string, unknown> {
  const single = { type: 'object', minProperties: 1, maxProperties: 1, propertyNames: { pattern: FILTER_ATTRIBUTE_NAME.source }, additionalProperties: { type: 'string' } }
  // Editors get three levels of all/any/not spelled out; deeper levels are checked by meshlet itself.
  const nested = depth < 3 ? filterJsonSchema(depth + 1) : { type: 'object' }
  const branch = (name: string, schema: unknown) => ({ type: 'object', additionalProperties: false, required: [name], properties: { [name]: schema } })
  return {
    oneOf: [
      branch('exact', { ...single, description: 'The attribute equals the value.' }),
      branch('prefix', { ...single, description: 'The attribute starts with the value.' }),
      branch('suffix', { ...single, description: 'The attribute ends with the value.' }),
      branch('all', { type: 'array', minItems: 1, maxItems: MAX_FILTER_ENTRIES, items: nested, description: 'Every filter matches.' }),
      branch('any', { type: 'array', minItems: 1, maxItems: MAX_FILTER_ENTRIES, items: nested, description: 'At least one filter matches.' }),
      branch('not', { ...nested, description: 'The filter does not match.' }),
      branch('cesql', { type: 'string', minLength: 1, maxLength: MAX_EXPRESSION_LENGTH, description: 'A CloudEvents SQL v1 expression; the event matches when it is true without error.' }),
    ],
  }
}

/** One entry of `filters`: exactly one dialect. */
export const subscriptionsFilterSchema: s.Schema<SubscriptionsFilter> = {
  description: 'One filter: exactly one of exact, prefix, suffix, all, any, not, cesql.',
  check: (v, path, issues) => checkFilter(v, path, 0, issues),
  jsonSchema: () => filterJsonSchema(0),
}

export const filtersSchema: s.Schema<SubscriptionsFilter[]> = {
  description: 'Subscriptions API filters (Knative `filters`), ANDed; when not empty they override `filter`.',
  check: (v, path, issues) => checkFilterList(v, path, 0, issues),
  jsonSchema: () => ({ type: 'array', maxItems: MAX_FILTER_ENTRIES, items: filterJsonSchema(0), description: 'Subscriptions API filters (Knative `filters`), ANDed; when not empty they override `filter`.' }),
}

/** The `filter` and `filters` fields, for object schemas that hold a FilterSpec (Trigger, AdvertisedTrigger). */
export const filterSpecFields = { filter: attributesFilterSchema, filters: filtersSchema }

export const filterSpecSchema: s.Schema<FilterSpec> = s.object(filterSpecFields, { description: 'Which events a trigger receives.' })
