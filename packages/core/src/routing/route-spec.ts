/**
 * The `Route` spec: ordered rules, each matching requests (path, method, headers, query) and
 * splitting them by weight across revisions, with an optional per-rule timeout and fault
 * injection. One schema for the Route resource and for `services.<name>.routes` in mesh options.
 */
import type { ConfigIssue } from '../errors.js'
import * as s from '../config/schema.js'
import { compilePathRegex } from './path-regex.js'

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const NAME_HINT = 'a DNS label (lowercase letters, digits and "-", at most 63 characters)'
const HEADER = /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/
const HEADER_HINT = 'a lowercase HTTP header name'
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'] as const
const MAX_REGEX = 256
/** No control character but HTAB (RFC 9110 field-value): no request carries CR, LF or NUL in a header, so such a match could never hold. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/
const HEADER_VALUE_HINT = 'a header value (control characters such as CR, LF or NUL cannot appear in one)'

const pathMatch = s.object(
  {
    exact: s.string({ maxLength: 2048, minLength: 1 }),
    prefix: s.string({ maxLength: 2048, minLength: 1 }),
    regex: s.string({ maxLength: MAX_REGEX, minLength: 1, description: `An RE2 regular expression over the path (no query), at most ${MAX_REGEX} characters; matched in linear time (no lookaround, no backreferences).` }),
  },
  { description: 'Exactly one of exact, prefix or regex.' },
)

const percent = s.number({ min: 0, max: 100 })

export const routeRuleSchema = s.object({
  match: s.object({
    path: pathMatch,
    method: s.oneOf(ROUTE_METHODS),
    headers: s.record(s.string({ pattern: HEADER, patternHint: HEADER_HINT }), s.string({ maxLength: 1024, pattern: HEADER_VALUE, patternHint: HEADER_VALUE_HINT }), { maxEntries: 16, description: 'Exact header values; "" matches any value of a present header.' }),
    query: s.record(s.string({ maxLength: 128, minLength: 1 }), s.string({ maxLength: 1024 }), { maxEntries: 16 }),
  }),
  split: s.array(s.object({ revision: s.string({ pattern: NAME, patternHint: NAME_HINT }), weight: s.number({ integer: true, min: 0, max: 100 }) }, { required: ['revision', 'weight'] }), { minItems: 1, maxItems: 16, description: 'Weights sum to 100.' }),
  sticky: s.object({ header: s.string({ pattern: HEADER, patternHint: HEADER_HINT }) }, { required: ['header'], description: 'Requests with the same value of this header go to the same revision.' }),
  timeout: s.duration({ min: 1, description: 'Overrides the service timeout for matching requests.' }),
  retries: s.object({
    attempts: s.number({ integer: true, min: 0, max: 10, description: 'Retries after the first attempt for matching requests (within the destination\'s retry budget; a destination with retries off is not retried).' }),
    perTryTimeout: s.duration({ min: 1 }),
  }),
  mirror: s.object({ revision: s.string({ pattern: NAME, patternHint: NAME_HINT }), percent }, { required: ['revision', 'percent'], description: 'Copy this percent of matching requests to a shadow revision, fire-and-forget: its answers and failures never reach the caller.' }),
  fault: s.object({
    delay: s.object({ fixed: s.duration({ min: 1, max: 60_000 }), percent }, { required: ['fixed', 'percent'] }),
    abort: s.object({ status: s.number({ integer: true, min: 200, max: 599 }), percent }, { required: ['status', 'percent'] }),
    header: s.string({ pattern: HEADER, patternHint: HEADER_HINT, description: 'Inject only into requests that carry this header (for tests).' }),
  }),
})

export const routeSpecSchema = s.object(
  {
    service: s.string({ pattern: NAME, patternHint: NAME_HINT, description: 'The destination service these rules route.' }),
    rules: s.array(routeRuleSchema, { minItems: 1, maxItems: 64, description: 'Tried in order; the first that matches routes the request. Unmatched requests go to any revision.' }),
  },
  { required: ['service', 'rules'] },
)

export type RouteRule = s.Infer<typeof routeRuleSchema>
export type RouteSpec = s.Infer<typeof routeSpecSchema>

/** Checks across fields: one path kind, weights summing to 100, regexes RE2 compiles. */
export function checkRouteRules(rules: readonly RouteRule[], prefix: string, issues: ConfigIssue[]): void {
  rules.forEach((rule, i) => {
    const at = `${prefix}[${i}]`
    const path = rule.match?.path
    if (path !== undefined) {
      const kinds = (['exact', 'prefix', 'regex'] as const).filter((k) => path[k] !== undefined)
      if (kinds.length !== 1) issues.push({ path: `${at}.match.path`, message: `give exactly one of exact, prefix or regex (got ${kinds.length === 0 ? 'none' : kinds.join(' and ')})` })
      if (path.regex !== undefined) {
        const compiled = compilePathRegex(path.regex)
        if (typeof compiled === 'string') issues.push({ path: `${at}.match.path.regex`, message: compiled })
      }
    }
    if (rule.split !== undefined) {
      const total = rule.split.reduce((n, t) => n + t.weight, 0)
      if (total !== 100) issues.push({ path: `${at}.split`, message: `weights sum to ${total}; they must sum to 100` })
      const seen = new Set<string>()
      for (const [j, t] of rule.split.entries()) {
        if (seen.has(t.revision)) issues.push({ path: `${at}.split[${j}].revision`, message: `"${t.revision}" appears twice in this split` })
        seen.add(t.revision)
      }
    }
    if (rule.split === undefined && rule.fault === undefined && rule.timeout === undefined && rule.retries === undefined && rule.mirror === undefined) issues.push({ path: at, message: 'does nothing: give a split, a timeout, retries, a mirror or a fault' })
  })
}
