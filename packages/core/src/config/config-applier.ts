/**
 * Applies live configuration to destinations: policy updates (ServicePolicy specs or `applyPolicy`)
 * and route tables (Route specs or `applyRoutes`).
 *
 * Contract: an update is validated whole before anything changes. A valid one replaces the
 * destination's policy or routes at once (new calls use it) and bumps `version`; an invalid one
 * changes nothing, throws MESHLET_ERR_CONFIG_INVALID naming every bad field, and is recorded as
 * `lastRejected`, counted in `meshlet.config.rejected` and published on `meshlet:config:rejected`.
 * Policies are layered field by field: defaults < mesh `defaults` < `services.<name>` < each
 * update in order.
 */
import type { Destination } from '../destination.js'
import { ConfigError, ErrorCodes, MeshletError, type ConfigIssue } from '../errors.js'
import { checkRouteRules, routeSpecSchema, type RouteSpec } from '../routing/route-spec.js'
import { RouteTable } from '../routing/route-table.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import { policyFields, resolvePolicy, type ValidatedMeshOptions } from './mesh-options.js'
import * as s from './schema.js'

export interface RejectedConfig {
  service: string
  source: string
  at: string
  issues: ConfigIssue[]
  message: string
}

const policyUpdateSchema = s.object(policyFields)

export interface ConfigApplierOptions {
  /** The mesh's own service name, for messages and the diagnostics channel. */
  mesh: string
  /** The validated mesh options: `defaults` and `services` are the layers under every update. */
  options: Pick<ValidatedMeshOptions, 'defaults' | 'services'>
  /** The destination an update is for (never created for it). */
  lookup: (service: string) => Destination | undefined
  /** Every destination name, for the message when there is none. */
  known: () => string[]
  metrics: MeshMetrics
  /** The clock for `lastRejected.at`. Default Date.now. */
  now?: () => number
}

export class ConfigApplier {
  readonly #o: ConfigApplierOptions
  readonly #now: () => number
  #version = 1
  #lastRejected: RejectedConfig | null = null

  constructor(options: ConfigApplierOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
  }

  /** Starts at 1; +1 for every update applied. */
  get version(): number {
    return this.#version
  }

  /** The last update refused, with why; the previous configuration stayed in force. */
  get lastRejected(): RejectedConfig | null {
    return this.#lastRejected
  }

  /** One policy update, or several layered in order (several ServicePolicy resources for one service). */
  applyPolicy(service: string, update: unknown, source: string): void {
    const dest = this.#destination(service, 'apply a policy to')
    const issues: ConfigIssue[] = []
    const layers = (Array.isArray(update) ? update : [update]).map((u, i, all) => policyUpdateSchema.check(u ?? {}, all.length > 1 ? `[${i}]` : '', issues))
    if (issues.length > 0) throw this.#reject(service, source, issues, 'policy update')
    dest.updatePolicy(resolvePolicy(this.#o.options.defaults, this.#o.options.services?.[service], ...layers))
    this.#applied(service, source)
  }

  /** Replaces the routes of one destination with the rules of the given Route specs, in order; none: no routes. */
  applyRoutes(service: string, specs: readonly unknown[], source: string): void {
    const dest = this.#destination(service, 'route')
    const issues: ConfigIssue[] = []
    const checked = specs.map((spec, i) => {
      const at = specs.length > 1 ? `[${i}]` : ''
      const v = routeSpecSchema.check(spec, at, issues)
      if (v !== undefined) checkRouteRules(v.rules, `${at ? `${at}.` : ''}rules`, issues)
      return v
    })
    if (issues.length > 0) throw this.#reject(service, source, issues, 'routes')
    dest.updateRoutes(checked.length === 0 ? undefined : new RouteTable(checked as RouteSpec[], source))
    this.#applied(service, source)
  }

  /**
   * Applies what the control endpoint holds for a destination just created for it; a refused part
   * leaves the destination on defaults (lastRejected says why) and does not throw.
   */
  applyInitial(service: string, routes: { specs: Record<string, unknown>[]; source: string } | undefined, policy: { specs: Record<string, unknown>[]; source: string } | undefined): void {
    if (routes !== undefined) this.applyRoutesQuietly(service, routes.specs, routes.source)
    if (policy !== undefined) this.applyPolicyQuietly(service, policy.specs.map(withoutService), policy.source)
  }

  /** applyRoutes for updates nobody waits on (the control watch): a refusal is only recorded. */
  applyRoutesQuietly(service: string, specs: readonly unknown[], source: string): void {
    try {
      this.applyRoutes(service, specs, source)
    } catch {
      // Refused: the previous routes stay; inspect(), the metric and the channel say why.
    }
  }

  /** applyPolicy for updates nobody waits on (the control watch): a refusal is only recorded. */
  applyPolicyQuietly(service: string, update: unknown, source: string): void {
    try {
      this.applyPolicy(service, update, source)
    } catch {
      // Refused: the previous policy stays; inspect(), the metric and the channel say why.
    }
  }

  #destination(service: string, what: string): Destination {
    const dest = this.#o.lookup(service)
    if (dest === undefined) throw new MeshletError(ErrorCodes.UNKNOWN_SERVICE, `Mesh "${this.#o.mesh}" has no destination "${service}" to ${what}; known: ${this.#o.known().join(', ') || '(none)'}.`)
    return dest
  }

  #applied(service: string, source: string): void {
    this.#version++
    publish(channels.configApplied, () => ({ mesh: this.#o.mesh, service, source, version: this.#version }))
  }

  #reject(service: string, source: string, issues: ConfigIssue[], what: string): ConfigError {
    const error = new ConfigError(issues, `${what} for "${service}" from ${source}`)
    this.#lastRejected = { service, source, at: new Date(this.#now()).toISOString(), issues, message: error.message }
    const metrics = this.#o.metrics
    metrics.configRejected.add(1, metrics.attributes(`cr:${service}`, () => ({ 'meshlet.destination': service })))
    publish(channels.configRejected, () => ({ ...this.#lastRejected }))
    return error
  }
}

/** A ServicePolicy spec as a policy update: `service` says where it applies, it is not a policy field. */
export function withoutService(spec: Record<string, unknown>): Record<string, unknown> {
  const { service: _service, ...update } = spec
  return update
}
