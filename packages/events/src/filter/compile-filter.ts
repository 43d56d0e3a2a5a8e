/**
 * `compileFilter({ filter?, filters? })` turns a Trigger's filters into a predicate over events,
 * with Knative's semantics:
 *
 * - a non-empty `filters` is used and `filter` ignored; its entries are ANDed;
 * - otherwise `filter.attributes`: every attribute equals its value exactly, an empty value
 *   meaning only that the attribute is present;
 * - neither: every event matches.
 *
 * Dialects: `exact` / `prefix` / `suffix` compare the attribute's string form (a missing attribute
 * never matches); `all`, `any`, `not` combine; `cesql` matches when the expression is Boolean true
 * with no error (an expression that errors does not match). Expressions compile once, here.
 *
 * The spec is validated first (the same rules as the Trigger kind); an invalid one throws
 * ConfigError (MESHLET_ERR_CONFIG_INVALID) naming each bad entry.
 */
import { ConfigError, type ConfigIssue } from '@meshlet/core'
import type { FilterSpec, SubscriptionsFilter } from '../resources/event-specs.js'
import { compileCesql, type CesqlResult, type CompiledCesql } from './cesql/cesql-expression.js'
import { stringAttribute, type FilterableEvent } from './event-attributes.js'
import { filterSpecSchema } from './filter-spec-schema.js'

export type EventPredicate = (event: FilterableEvent) => boolean

/** What `explain` reports for each CESQL expression of a filter, wherever it sits. */
export interface CesqlOutcome {
  /** Where the expression is in the spec: `filters[0].any[1].cesql`. */
  readonly path: string
  readonly expression: string
  readonly result: CesqlResult
}

export interface FilterExplanation {
  readonly matched: boolean
  /** Every CESQL expression evaluated against the event (also those the match did not need). */
  readonly cesql: readonly CesqlOutcome[]
}

export interface CompiledFilter extends EventPredicate {
  /** Which part of the spec decides: `filters`, `filter` (legacy attributes) or `none` (everything matches). */
  readonly uses: 'filters' | 'filter' | 'none'
  /** The match, with each CESQL expression's value and errors: for `meshlet events test-filter` and debugging. */
  explain(event: FilterableEvent): FilterExplanation
}

export function compileFilter(spec: FilterSpec): CompiledFilter {
  const issues: ConfigIssue[] = []
  const checked = filterSpecSchema.check(spec ?? {}, '', issues)
  if (checked === undefined || issues.length > 0) throw new ConfigError(issues.map((i) => ({ ...i, path: i.path || '(root)' })), 'filter')
  const expressions: { path: string; compiled: CompiledCesql }[] = []
  let predicate: EventPredicate
  let uses: CompiledFilter['uses']
  if (checked.filters !== undefined && checked.filters.length > 0) {
    uses = 'filters'
    predicate = allOf(checked.filters.map((f, i) => compileEntry(f, `filters[${i}]`, expressions)))
  } else if (checked.filter !== undefined) {
    uses = 'filter'
    predicate = attributesPredicate(checked.filter.attributes)
  } else {
    uses = 'none'
    predicate = () => true
  }
  const filter = ((event: FilterableEvent) => predicate(event)) as CompiledFilter
  return Object.assign(filter, {
    uses,
    explain(event: FilterableEvent): FilterExplanation {
      return { matched: predicate(event), cesql: expressions.map(({ path, compiled }) => ({ path, expression: compiled.source, result: compiled.evaluate(event) })) }
    },
  })
}

function attributesPredicate(attributes: Record<string, string>): EventPredicate {
  const entries = Object.entries(attributes)
  return (event) => entries.every(([name, want]) => {
    const got = stringAttribute(event, name)
    return got !== undefined && (want === '' || got === want)
  })
}

function allOf(predicates: EventPredicate[]): EventPredicate {
  if (predicates.length === 1) return predicates[0]!
  return (event) => predicates.every((p) => p(event))
}

/** Compiles one validated entry (exactly one dialect, CESQL known to parse). */
function compileEntry(f: SubscriptionsFilter, path: string, expressions: { path: string; compiled: CompiledCesql }[]): EventPredicate {
  if ('exact' in f) return singleAttribute(f.exact, (got, want) => got === want)
  if ('prefix' in f) return singleAttribute(f.prefix, (got, want) => got.startsWith(want))
  if ('suffix' in f) return singleAttribute(f.suffix, (got, want) => got.endsWith(want))
  if ('all' in f) return allOf(f.all.map((x, i) => compileEntry(x, `${path}.all[${i}]`, expressions)))
  if ('any' in f) {
    const ps = f.any.map((x, i) => compileEntry(x, `${path}.any[${i}]`, expressions))
    return (event) => ps.some((p) => p(event))
  }
  if ('not' in f) {
    const p = compileEntry(f.not, `${path}.not`, expressions)
    return (event) => !p(event)
  }
  const c = compileCesql(f.cesql)
  // Validation compiled it already; a failure here would be a bug, and an invalid filter must not match.
  if (!c.ok) return () => false
  expressions.push({ path: `${path}.cesql`, compiled: c.expression })
  return c.expression.matches
}

function singleAttribute(attrs: Record<string, string>, test: (got: string, want: string) => boolean): EventPredicate {
  const [name, want] = Object.entries(attrs)[0]!
  return (event) => {
    const got = stringAttribute(event, name)
    return got !== undefined && test(got, want)
  }
}
