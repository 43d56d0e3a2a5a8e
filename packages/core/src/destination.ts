/**
 * One destination service: its resolver, balancer, retry budget, breaker and the composed client
 * stack per transport. Core knows no transport: the stack's terminal comes from a ClientProtocol.
 */
import type CircuitBreaker from 'opossum'
import { Balancer, type EndpointSnapshot } from './balance/balancer.js'
import type { ServicePolicy } from './config/mesh-options.js'
import { callScope } from './deadline/call-scope.js'
import type { Resolver } from './discovery/resolver.js'
import { balanceFilter, breakerFilter, deadlineFilter, newBreaker, retryFilter, telemetryFilter } from './resilience/client-filters.js'
import { RetryBudget } from './resilience/retry-budget.js'
import { routeCall, routeFilter, type RouteDecision } from './routing/route-filter.js'
import type { RequestInfo, RouteTable } from './routing/route-table.js'
import type { ClientProtocol } from './stack/client-protocol.js'
import { compose, newCallContext, type CallContext, type Service, type StackEntry } from './stack/service.js'
import { channels, publish } from './telemetry/diagnostics.js'
import type { MeshMetrics } from './telemetry/metrics.js'

export interface DestinationSnapshot {
  resolver: string
  policy: ServicePolicy
  endpoints: EndpointSnapshot[]
  breaker: { state: 'closed' | 'open' | 'half-open'; fires: number; failures: number } | null
  retryBudget: { balance: number } | null
  lastDiscoveryError: string | null
}

export class Destination {
  readonly name: string
  #policy: ServicePolicy
  readonly balancer: Balancer
  #budget: RetryBudget | undefined
  #routes: RouteTable | undefined
  /** Resolves once the resolver delivered its first snapshot. */
  readonly ready: Promise<void>
  readonly #resolver: Resolver
  readonly #metrics: MeshMetrics
  #stacks = new WeakMap<ClientProtocol<never, never>, Service<never, never>>()
  #breaker: CircuitBreaker | undefined
  #lastError: Error | undefined

  constructor(name: string, policy: ServicePolicy, resolver: Resolver, zone: string | undefined, metrics: MeshMetrics) {
    this.name = name
    this.#policy = policy
    this.#resolver = resolver
    this.#metrics = metrics
    this.balancer = new Balancer(name, policy.balancer, policy.outlier, zone, metrics)
    this.#budget = newBudget(policy)
    this.ready = new Promise((resolve) => {
      resolver.start({
        onChanges: (changes) => {
          this.balancer.applyChanges(changes)
          resolve()
        },
        onError: (error) => {
          this.#lastError = error
          publish(channels.discoveryError, () => ({ service: name, error }))
        },
      })
    })
  }

  get policy(): ServicePolicy {
    return this.#policy
  }

  get budget(): RetryBudget | undefined {
    return this.#budget
  }

  /**
   * Applies a new policy to new calls; calls in flight finish under the old one. Endpoint state is
   * kept; the retry budget and breaker start afresh only when their own settings changed.
   */
  updatePolicy(policy: ServicePolicy): void {
    const old = this.#policy
    this.#policy = policy
    if (!sameSettings(old.retries, policy.retries)) this.#budget = newBudget(policy)
    if (!sameSettings(old.breaker, policy.breaker)) {
      this.#breaker?.shutdown()
      this.#breaker = undefined
    }
    this.balancer.configure(policy.balancer, policy.outlier)
    this.#stacks = new WeakMap()
  }

  /**
   * The destination's breaker, shared by every transport (the gRPC interceptors fire it around a
   * whole call); undefined when the policy has none. Replaced when the breaker settings change.
   */
  get breaker(): CircuitBreaker | undefined {
    if (!this.#policy.breaker) return undefined
    return (this.#breaker ??= newBreaker(this.name, this.#policy.breaker, this.#metrics))
  }

  get routes(): RouteTable | undefined {
    return this.#routes
  }

  /** Replaces the route table (undefined: no routes); new calls use it at once. */
  updateRoutes(routes: RouteTable | undefined): void {
    this.#routes = routes !== undefined && routes.rules.length > 0 ? routes : undefined
    this.#stacks = new WeakMap()
  }

  /**
   * Routes one call made outside the client stack (gRPC's interceptor): see routeCall. Undefined
   * when the destination has no routes or none matches.
   */
  route(info: RequestInfo, ctx: CallContext, canMirror: boolean): RouteDecision | undefined {
    const routes = this.#routes
    return routes === undefined ? undefined : routeCall(routes, info, ctx, this.#metrics, (revision) => this.balancer.pickShadow(revision), canMirror)
  }

  /** The composed client stack for a transport, built on first use; callers must not cache it across policy updates. */
  stack<Req, Res>(protocol: ClientProtocol<Req, Res>): Service<Req, Res> {
    const key = protocol as unknown as ClientProtocol<never, never>
    let s = this.#stacks.get(key) as Service<Req, Res> | undefined
    if (s === undefined) {
      s = compose(this.#entries(protocol), protocol.endpoint)
      this.#stacks.set(key, s as unknown as Service<never, never>)
    }
    return s
  }

  /**
   * A context for one call: its deadline is the earlier of the inbound request's (from the call
   * scope) and this destination's timeout; its signal is the inbound request's cancellation.
   */
  newContext(idempotent: boolean, signal?: AbortSignal): CallContext {
    const scope = callScope.getStore()
    let deadline = this.#policy.timeout === Infinity ? Infinity : Date.now() + this.#policy.timeout
    let s = signal
    if (scope !== undefined) {
      if (scope.deadline < deadline) deadline = scope.deadline
      if (s === undefined) s = scope.signal
      else if (scope.signal !== undefined) s = AbortSignal.any([s, scope.signal])
    }
    return newCallContext(this.name, deadline, s, idempotent, this.#policy.retries ? this.#policy.retries.perTryTimeout : Infinity)
  }

  snapshot(): DestinationSnapshot {
    const b = this.#breaker
    return {
      resolver: this.#resolver.describe(),
      policy: this.policy,
      endpoints: this.balancer.snapshot(),
      breaker: b ? { state: b.opened ? 'open' : b.halfOpen ? 'half-open' : 'closed', fires: b.stats.fires, failures: b.stats.failures } : null,
      retryBudget: this.budget ? { balance: Math.floor(this.budget.balance()) } : null,
      lastDiscoveryError: this.#lastError?.message ?? null,
    }
  }

  async close(): Promise<void> {
    this.#resolver.close()
    this.#breaker?.shutdown()
    await this.balancer.close()
  }

  #entries<Req, Res>(protocol: ClientProtocol<Req, Res>): StackEntry<Req, Res>[] {
    const p = this.#policy
    const entries: StackEntry<Req, Res>[] = [
      { role: 'telemetry', filter: telemetryFilter(protocol, this.#metrics) },
      { role: 'deadline', filter: deadlineFilter() },
    ]
    const { requestInfo, abortResponse, mirror } = protocol
    if (this.#routes !== undefined && requestInfo !== undefined && abortResponse !== undefined) {
      entries.push({ role: 'route', filter: routeFilter(this.#routes, { requestInfo, abortResponse, mirror }, this.#metrics, (revision) => this.balancer.pickShadow(revision)) })
    }
    if (p.retries && this.#budget) entries.push({ role: 'retry', filter: retryFilter(protocol, p.retries, this.#budget, this.#metrics) })
    if (p.breaker) {
      // One breaker per destination, shared by every transport's stack until its settings change.
      this.#breaker ??= newBreaker(this.name, p.breaker, this.#metrics)
      entries.push({ role: 'breaker', filter: breakerFilter(this.#breaker, protocol) })
    }
    entries.push({ role: 'balance', filter: balanceFilter(this.balancer, protocol) })
    return entries
  }
}

function newBudget(policy: ServicePolicy): RetryBudget | undefined {
  return policy.retries ? new RetryBudget(policy.retries.budgetPercent, policy.retries.budgetMinPerSecond, policy.retries.budgetTtl) : undefined
}

function sameSettings(a: object | false, b: object | false): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
