/**
 * The pieces most client-filter tests start from: endpoint addresses, a real Balancer over them,
 * a call context on the fake clock, policies with test-sized numbers, and filters composed over a
 * fake protocol's terminal. Test-only.
 */
import { Balancer } from '../../balance/balancer.js'
import { DEFAULT_POLICY, type BalancerPolicy, type BreakerPolicy, type RetryPolicy, type ServicePolicy } from '../../config/mesh-options.js'
import { Destination } from '../../destination.js'
import type { EndpointAddress, Resolver } from '../../discovery/resolver.js'
import { StaticResolver } from '../../discovery/resolver-static.js'
import { compose } from '../../stack/service.js'
import { MeshMetrics } from '../../telemetry/metrics.js'
import { newCallContext, type CallContext, type Filter, type Service, type StackEnv } from '../call-context.js'
import { ClientStack } from '../client-stack.js'
import type { FakeCall, FakeResponse } from './fake-protocol.test-support.js'

export const SERVICE = 'payments'

export function address(port: number, extra: { zone?: string; revision?: string } = {}): EndpointAddress {
  return { url: `http://10.0.0.1:${port}`, protocol: 'http', host: '10.0.0.1', port, ...extra }
}

export const ROUND_ROBIN: BalancerPolicy = { type: 'round-robin', decay: 10_000, failurePenalty: 1000, loadFactor: 1.25 }

/** A real balancer (no outlier sweep) over `endpoints`; close it in afterEach. */
export function balancerOf(endpoints: readonly EndpointAddress[], policy: BalancerPolicy = ROUND_ROBIN, metrics = new MeshMetrics()): Balancer {
  const b = new Balancer(SERVICE, policy, false, undefined, metrics)
  if (endpoints.length > 0) b.applyChanges(endpoints.map((endpoint) => ({ type: 'insert', endpoint })))
  return b
}

/** A context for one call on `env`'s clock: `timeout` ms from now (Infinity: no deadline). */
export function callContext(env: StackEnv, opts: { timeout?: number; idempotent?: boolean; signal?: AbortSignal; perTryTimeout?: number } = {}): CallContext {
  const timeout = opts.timeout ?? 10_000
  return newCallContext(SERVICE, timeout === Infinity ? Infinity : env.now() + timeout, opts.signal, opts.idempotent ?? true, opts.perTryTimeout ?? Infinity)
}

export const RETRIES: RetryPolicy = { attempts: 2, perTryTimeout: Infinity, backoffBase: 25, backoffMax: 250, budgetPercent: 20, budgetMinPerSecond: 10, budgetTtl: 10_000 }
export const BREAKER: BreakerPolicy = { errorThreshold: 50, volumeThreshold: 4, window: 10_000, resetTimeout: 5000 }

/** DEFAULT_POLICY with round-robin balancing, no outlier detection, and `overrides`. */
export function policy(overrides: Partial<ServicePolicy> = {}): ServicePolicy {
  return { ...DEFAULT_POLICY, balancer: ROUND_ROBIN, outlier: false, ...overrides }
}

/** `filters`, outermost first, around `terminal`. */
export function stackOf(filters: readonly (Filter<FakeCall, FakeResponse> | undefined)[], terminal: Service<FakeCall, FakeResponse>): Service<FakeCall, FakeResponse> {
  return compose(
    filters.flatMap((filter, i) => (filter === undefined ? [] : [{ role: `f${i}`, filter }])),
    terminal,
  )
}

/** Lets pending promise callbacks run (no timers involved). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

export interface TestDestinationOptions {
  policy?: ServicePolicy
  endpoints?: readonly EndpointAddress[]
  resolver?: Resolver
  clientStack?: ClientStack
  env?: StackEnv
  metrics?: MeshMetrics
}

/** A real Destination over a StaticResolver (two endpoints by default); close it in afterEach. */
export function testDestination(opts: TestDestinationOptions = {}): Destination {
  const resolver = opts.resolver ?? new StaticResolver(opts.endpoints ?? [address(9001), address(9002)])
  return new Destination(SERVICE, opts.policy ?? policy(), resolver, undefined, opts.metrics ?? new MeshMetrics(), opts.clientStack ?? new ClientStack(), opts.env)
}
