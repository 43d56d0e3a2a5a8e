/**
 * Properties of routes: the rule schema and its cross-field checks (a spec or issues naming the
 * field, for any input), and the compiled table (first match, exact weighted splits, sticky
 * affinity, no exception on any request).
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { ConfigIssue } from '../errors.js'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { compilePathRegex } from './path-regex.js'
import { checkRouteRules, ROUTE_METHODS, routeSpecSchema, type RouteRule, type RouteSpec } from './route-spec.js'
import { RouteTable, type RequestInfo } from './route-table.js'

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
/** Keys an object may carry that JavaScript treats specially when they are assigned. */
const trickyKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString')
const headerName = fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,12}$/), fc.constantFrom('__proto__', 'constructor', 'prototype'))
/** Header values a peer can send: visible ASCII, spaces and tabs inside (no CR, LF or NUL). */
const headerValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e\t]{0,10}[\x21-\x7e])?$/)
const percent = fc.oneof(fc.constantFrom(0, 100), fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 100, noNaN: true }))

/** Weights over distinct revisions that sum to 100. */
export const split = fc
  .uniqueArray(label, { minLength: 1, maxLength: 5 })
  .chain((revisions) => fc.array(fc.nat({ max: 100 }), { minLength: revisions.length, maxLength: revisions.length }).map((raw) => ({ revisions, raw })))
  .map(({ revisions, raw }) => {
    const total = raw.reduce((a, b) => a + b, 0)
    const weights = total === 0 ? raw.map((_, i) => (i === 0 ? 100 : 0)) : raw.map((w) => Math.floor((w * 100) / total))
    weights[0]! += 100 - weights.reduce((a, b) => a + b, 0)
    return revisions.map((revision, i) => ({ revision, weight: weights[i]! }))
  })

const pathMatch = fc.oneof(
  fc.record({ exact: fc.stringMatching(/^\/[a-z0-9/._-]{0,20}$/) }),
  fc.record({ prefix: fc.stringMatching(/^\/[a-z0-9/._-]{0,10}$/) }),
  fc.record({ regex: fc.constantFrom('^/api/v[0-9]+/', '^/(a|b)+$', 'x', '^/orders/[0-9]{1,6}$', '.*') }),
)

/** A rule the schema and the cross-checks accept (durations as text or ms, as config writes them). */
export const validRule: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    match: fc.record(
      {
        path: pathMatch,
        method: fc.constantFrom(...ROUTE_METHODS),
        headers: fc.dictionary(headerName, fc.oneof(fc.constant(''), headerValue), { maxKeys: 4 }),
        query: fc.dictionary(fc.oneof(fc.stringMatching(/^[a-z]{1,6}$/), trickyKey), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
      },
      { requiredKeys: [] },
    ),
    split,
    sticky: fc.record({ header: headerName }),
    timeout: fc.oneof(fc.integer({ min: 1, max: 60_000 }), fc.constantFrom('250ms', '2s', '1m30s')),
    retries: fc.record({ attempts: fc.integer({ min: 0, max: 10 }), perTryTimeout: fc.constantFrom('100ms', 500) }, { requiredKeys: [] }),
    mirror: fc.record({ revision: label, percent }),
    fault: fc.record(
      {
        delay: fc.record({ fixed: fc.integer({ min: 1, max: 60_000 }), percent }),
        abort: fc.record({ status: fc.integer({ min: 200, max: 599 }), percent }),
        header: headerName,
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['split'] },
)

export const validRouteSpec = fc.record({ service: label, rules: fc.array(validRule, { minLength: 1, maxLength: 5 }) })

/** A valid spec with one field somewhere replaced by junk, or junk outright. */
export const hostileRouteSpec = fc.oneof(
  fc.anything(),
  fc.record({ service: fc.anything(), rules: fc.anything() }, { requiredKeys: [] }),
  fc.tuple(validRouteSpec, fc.nat(), fc.constantFrom('match', 'split', 'sticky', 'timeout', 'retries', 'mirror', 'fault', 'nonsense'), fc.anything()).map(([spec, i, field, junk]) => {
    const rules = spec.rules.map((r) => ({ ...r }))
    rules[i % rules.length]![field] = junk
    return { ...spec, rules }
  }),
  fc.tuple(validRouteSpec, fc.string({ maxLength: 300 })).map(([spec, regex]) => ({ ...spec, rules: [{ match: { path: { regex } }, split: [{ revision: 'v1', weight: 100 }] }] })),
)

function validate(value: unknown): { spec: RouteSpec | undefined; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = []
  const spec = routeSpecSchema.check(value, 'spec', issues)
  if (spec !== undefined && issues.length === 0) checkRouteRules(spec.rules, 'spec.rules', issues)
  return { spec: issues.length === 0 ? spec : undefined, issues }
}

/** A request as a transport hands it to the router: any method, path, query and headers. */
const request = fc.record({
  method: fc.oneof(fc.constantFrom(...ROUTE_METHODS), fc.string({ maxLength: 8 })),
  path: fc.oneof(fc.stringMatching(/^\/[a-z0-9/._-]{0,20}$/), fc.string({ maxLength: 200, unit: 'binary' })),
  query: fc.oneof(fc.constant(''), fc.string({ maxLength: 60 }), fc.constantFrom('%zz', 'a=%E0%A4%A', '__proto__=x&constructor=y', '&&==&')),
  headers: fc.dictionary(headerName, fc.string({ maxLength: 20 }), { maxKeys: 5 }),
})
const requestInfo = (r: { method: string; path: string; query: string; headers: Record<string, string> }): RequestInfo => ({
  method: r.method,
  path: r.path,
  query: r.query,
  header: (name) => (Object.hasOwn(r.headers, name) ? r.headers[name] : undefined),
})

export const routeSuite: FuzzSuite = {
  name: 'route',
  regressions: new URL('./route.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'a route spec validates, or every issue names a field under spec; never an exception',
      make: () => ({
        property: fc.property(fc.oneof(validRouteSpec, hostileRouteSpec), (value) => {
          const { spec, issues } = validate(value)
          if (spec === undefined) {
            assert.ok(issues.length > 0)
            for (const i of issues) assert.ok(i.path === 'spec' || i.path.startsWith('spec.') || i.path === '(root)', `issue at ${i.path}`)
          }
        }),
      }),
    },
    {
      name: 'every generated valid spec validates, keeping each header and query key of its matches',
      make: () => ({
        property: fc.property(validRouteSpec, (value) => {
          const { spec, issues } = validate(value)
          assert.deepEqual(issues, [])
          value.rules.forEach((rule, i) => {
            const given = rule.match as { headers?: Record<string, string>; query?: Record<string, string> } | undefined
            const kept = spec!.rules[i]!.match
            for (const field of ['headers', 'query'] as const) {
              if (given?.[field] === undefined) continue
              assert.deepEqual(Object.keys(kept?.[field] ?? {}).sort(), Object.keys(given[field]).sort(), `spec.rules[${i}].match.${field}`)
              for (const k of Object.keys(given[field])) assert.ok(Object.hasOwn(kept![field]!, k), `match.${field} lost the key ${JSON.stringify(k)}`)
            }
          })
        }),
      }),
    },
    {
      name: 'a match header value with a control character (CR, LF, NUL...) is refused at spec.rules[i].match.headers.<name>',
      make: () => ({
        property: fc.property(validRouteSpec, fc.nat(), fc.stringMatching(/^[a-z-]{1,8}$/), headerValue, fc.integer({ min: 0, max: 0x1f }).filter((c) => c !== 9), (spec, i, name, value, ctl) => {
          const rules = spec.rules.map((r) => ({ ...r }))
          const at = i % rules.length
          const bad = `${value.slice(0, 1)}${String.fromCharCode(ctl)}${value.slice(1)}`
          rules[at] = { ...rules[at], match: { headers: { [name]: bad } } }
          const { issues } = validate({ ...spec, rules })
          assert.ok(issues.some((x) => x.path === `spec.rules[${at}].match.headers.${name}`), JSON.stringify(issues))
        }),
      }),
    },
    {
      name: 'compilePathRegex gives a matcher or one sentence for any string, and a matcher never throws on any path',
      make: () => ({
        property: fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: fc.constantFrom(...'()[]{}*+?|^$\\.,0123456789ab'), maxLength: 40 })), fc.string({ maxLength: 200, unit: 'binary' }), (source, path) => {
          const re = compilePathRegex(source)
          if (typeof re === 'string') assert.ok(re.length > 0)
          else assert.equal(typeof re.test(path), 'boolean')
        }),
      }),
    },
    {
      name: 'a table routes any request to its first matching rule, or to none; never an exception',
      make: () => ({
        property: fc.property(fc.array(validRouteSpec, { minLength: 1, maxLength: 3 }), fc.array(request, { minLength: 1, maxLength: 10 }), (values, requests) => {
          const specs = values.map((v) => validate(v).spec!)
          const table = new RouteTable(specs, 'fuzz')
          for (const r of requests) {
            const info = requestInfo(r)
            const rule = table.route(info)
            const first = table.rules.find((x) => x.matches(info))
            assert.equal(rule, first)
            if (rule !== undefined) {
              const revision = rule.revision(info)
              assert.ok(revision === undefined || typeof revision === 'string')
            }
          }
        }),
      }),
    },
    {
      name: 'exact and prefix matches agree with string equality and startsWith',
      make: () => ({
        property: fc.property(fc.stringMatching(/^\/[ab/]{0,6}$/), fc.stringMatching(/^\/[ab/]{0,6}$/), fc.boolean(), (pattern, path, exact) => {
          const rule = { match: { path: exact ? { exact: pattern } : { prefix: pattern } }, split: [{ revision: 'v1', weight: 100 }] } as RouteRule
          const table = new RouteTable([{ service: 'a', rules: [rule] }], 'fuzz')
          const matched = table.route(requestInfo({ method: 'GET', path, query: '', headers: {} })) !== undefined
          assert.equal(matched, exact ? path === pattern : path.startsWith(pattern))
        }),
      }),
    },
    {
      name: 'a weighted split gives each revision exactly its weight in every 100 consecutive picks',
      make: () => ({
        property: fc.property(split, fc.nat({ max: 250 }), (targets, warmup) => {
          const table = new RouteTable([{ service: 'a', rules: [{ split: targets } as RouteRule] }], 'fuzz')
          const info = requestInfo({ method: 'GET', path: '/', query: '', headers: {} })
          const rule = table.route(info)!
          for (let i = 0; i < warmup; i++) rule.revision(info)
          const seen = new Map<string, number>()
          for (let i = 0; i < 100; i++) {
            const r = rule.revision(info)!
            seen.set(r, (seen.get(r) ?? 0) + 1)
          }
          for (const t of targets) assert.equal(seen.get(t.revision) ?? 0, t.weight, t.revision)
        }),
      }),
    },
    {
      name: 'a sticky split sends one header value to one revision, always one with weight',
      make: () => ({
        property: fc.property(split, fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 20 }), (targets, keys) => {
          const rule = { split: targets, sticky: { header: 'x-user' } } as RouteRule
          const table = new RouteTable([{ service: 'a', rules: [rule] }], 'fuzz')
          const weighted = new Set(targets.filter((t) => t.weight > 0).map((t) => t.revision))
          for (const key of keys) {
            const info = requestInfo({ method: 'GET', path: '/', query: '', headers: { 'x-user': key } })
            const a = table.route(info)!.revision(info)!
            assert.ok(weighted.has(a), a)
            assert.equal(table.route(info)!.revision(info), a)
          }
        }),
      }),
    },
  ],
}
