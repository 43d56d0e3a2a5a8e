/**
 * A compiled route table: the first matching rule decides a request's revision (weighted split,
 * exact over time by smooth weighted round-robin, or sticky by a header's hash), its timeout and
 * its faults. Immutable; a new table replaces the old one on update.
 */
import { compilePathRegex, type PathRegex } from './path-regex.js'
import type { RouteRule, RouteSpec } from './route-spec.js'

/** What the router may read from a request; a transport supplies it. */
export interface RequestInfo {
  readonly method: string
  /** Path without the query. */
  readonly path: string
  readonly query: string
  header(name: string): string | undefined
}

interface Target {
  readonly revision: string
  readonly weight: number
  current: number
}

export class CompiledRule {
  readonly timeout: number | undefined
  readonly retries: RouteRule['retries']
  readonly fault: RouteRule['fault']
  readonly mirror: RouteRule['mirror']
  readonly #rule: RouteRule
  readonly #regex: PathRegex | undefined
  readonly #targets: Target[] | undefined
  readonly #sticky: string | undefined
  readonly #query: [string, string][] | undefined

  constructor(rule: RouteRule) {
    this.#rule = rule
    this.timeout = rule.timeout
    this.retries = rule.retries
    this.fault = rule.fault
    this.mirror = rule.mirror
    this.#regex = rule.match?.path?.regex !== undefined ? pathRegexOf(rule.match.path.regex) : undefined
    this.#targets = rule.split?.filter((t) => t.weight > 0).map((t) => ({ revision: t.revision, weight: t.weight, current: 0 }))
    this.#sticky = rule.sticky?.header
    this.#query = rule.match?.query ? Object.entries(rule.match.query) : undefined
  }

  matches(req: RequestInfo): boolean {
    const m = this.#rule.match
    if (m === undefined) return true
    if (m.method !== undefined && m.method !== req.method) return false
    const p = m.path
    if (p !== undefined) {
      if (p.exact !== undefined && req.path !== p.exact) return false
      if (p.prefix !== undefined && !req.path.startsWith(p.prefix)) return false
      if (this.#regex !== undefined && !this.#regex.test(req.path)) return false
    }
    if (m.headers !== undefined) {
      for (const name in m.headers) {
        const v = req.header(name)
        if (v === undefined || (m.headers[name] !== '' && v !== m.headers[name])) return false
      }
    }
    if (this.#query !== undefined) {
      const q = new URLSearchParams(req.query)
      for (const [k, v] of this.#query) if (q.get(k) !== v) return false
    }
    return true
  }

  /** The revision for one request, or undefined when the rule does not split. */
  revision(req: RequestInfo): string | undefined {
    const targets = this.#targets
    if (targets === undefined || targets.length === 0) return undefined
    if (targets.length === 1) return targets[0]!.revision
    if (this.#sticky !== undefined) {
      const key = req.header(this.#sticky)
      if (key !== undefined) {
        let bucket = fnv1a(key) % 100
        for (const t of targets) if ((bucket -= t.weight) < 0) return t.revision
      }
    }
    // Smooth weighted round-robin (nginx): exact proportions over every window of 100 picks.
    let best = targets[0]!
    for (const t of targets) {
      t.current += t.weight
      if (t.current > best.current) best = t
    }
    best.current -= 100
    return best.revision
  }
}

export class RouteTable {
  readonly rules: readonly CompiledRule[]
  readonly source: string

  constructor(specs: readonly RouteSpec[], source: string) {
    this.rules = specs.flatMap((spec) => spec.rules.map((r) => new CompiledRule(r)))
    this.source = source
  }

  /** The first rule that matches, or undefined. */
  route(req: RequestInfo): CompiledRule | undefined {
    for (const r of this.rules) if (r.matches(req)) return r
    return undefined
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Rules reach a table validated (checkRouteRules compiled the regex), so a failure here is a bug. */
function pathRegexOf(source: string): PathRegex {
  const compiled = compilePathRegex(source)
  if (typeof compiled === 'string') throw new Error(`route path regex ${JSON.stringify(source)} ${compiled}`)
  return compiled
}
