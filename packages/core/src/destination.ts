/**
 * One destination service: its resolver, balancer, retry budget, breaker and the composed client
 * stack per transport. Core knows no transport: the stack's terminal comes from a ClientProtocol.
 */
import type CircuitBreaker from 'opossum'
import { Balancer, type EndpointSnapshot } from './balance/balancer.js'
import { newCallContext, systemEnv, type CallContext, type Filter, type Service, type StackEnv } from './client/call-context.js'
import type { ClientProtocol } from './client/client-protocol.js'
import { ClientStack } from './client/client-stack.js'
import type { ServicePolicy } from './config/mesh-options.js'
import { callScope } from './deadline/call-scope.js'
import type { Resolver } from './discovery/resolver.js'
import { newBreaker } from './resilience/breaker-filter.js'
import { RetryBudget } from './resilience/retry-budget.js'
import type { RouteTable } from './routing/route-table.js'
import { compose } from './stack/service.js'
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
  readonly #clientStack: ClientStack
  readonly #env: StackEnv
  #stacks = new WeakMap<ClientProtocol<never, never>, Service<never, never>>()
  /** The client stack's version the cached stacks were built from. */
  #stacksVersion: number
  #breaker: CircuitBreaker | undefined
  #lastError: Error | undefined

  /**
   * `clientStack` is the mesh's (users may change its roles); `env` the clock and random source the
   * stack reads (tests pass their own).
   */
  constructor(name: string, policy: ServicePolicy, resolver: Resolver, zone: string | undefined, metrics: MeshMetrics, clientStack: ClientStack = new ClientStack(), env: StackEnv = systemEnv) {
    this.name = name
    this.#policy = policy
    this.#resolver = resolver
    this.#metrics = metrics
    this.#clientStack = clientStack
    this.#stacksVersion = clientStack.version
    this.#env = env
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

  /** The destination's breaker, shared by every transport's stack; undefined when the policy has none. Replaced when the breaker settings change. */
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
   * The composed client stack for a transport, built on first use and rebuilt after a policy, route
   * or stack change; callers must not cache it across calls.
   */
  stack<Req, Res>(protocol: ClientProtocol<Req, Res>): Service<Req, Res> {
    if (this.#stacksVersion !== this.#clientStack.version) {
      this.#stacks = new WeakMap()
      this.#stacksVersion = this.#clientStack.version
    }
    const key = protocol as unknown as ClientProtocol<never, never>
    let s = this.#stacks.get(key) as Service<Req, Res> | undefined
    if (s === undefined) {
      s = compose(this.entries(protocol), protocol.endpoint)
      this.#stacks.set(key, s as unknown as Service<never, never>)
    }
    return s
  }

  /** The filters of this destination's stack for `protocol`, outermost first, with their role names. */
  entries<Req, Res>(protocol: ClientProtocol<Req, Res>): { readonly role: string; readonly filter: Filter<Req, Res> }[] {
    return this.#clientStack.build({
      service: this.name,
      policy: this.#policy,
      routes: this.#routes,
      balancer: this.balancer,
      budget: this.#budget,
      breaker: this.breaker,
      metrics: this.#metrics,
      protocol: protocol as ClientProtocol<unknown, unknown>,
      env: this.#env,
    }) as unknown as { role: string; filter: Filter<Req, Res> }[]
  }

  /**
   * A context for one call: its deadline is the earlier of the inbound request's (from the call
   * scope) and this destination's timeout; its signal is the inbound request's cancellation.
   */
  newContext(idempotent: boolean, signal?: AbortSignal): CallContext {
    const scope = callScope.getStore()
    let deadline = this.#policy.timeout === Infinity ? Infinity : this.#env.now() + this.#policy.timeout
    let s = signal
    if (scope !== undefined) {
      if (scope.deadline < deadline) deadline = scope.deadline
      if (s === undefined) s = scope.signal
      else if (scope.signal !== undefined) s = AbortSignal.any([s, scope.signal])
    }
    const ctx = newCallContext(this.name, deadline, s, idempotent, this.#policy.retries ? this.#policy.retries.perTryTimeout : Infinity)
    // Retries happen at one hop: serving a caller's retry, this hop does not retry again.
    if (scope?.retried === true) ctx.callerRetrying = true
    return ctx
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
}

function newBudget(policy: ServicePolicy): RetryBudget | undefined {
  return policy.retries ? new RetryBudget(policy.retries.budgetPercent, policy.retries.budgetMinPerSecond, policy.retries.budgetTtl) : undefined
}

function sameSettings(a: object | false, b: object | false): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
