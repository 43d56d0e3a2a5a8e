/**
 * The one client stack, for every transport: named roles, outermost first, each placed for a
 * reason (Finagle's StackClient). A transport supplies only its ClientProtocol, the terminal that
 * sends one attempt; every policy above it has one implementation and one semantics.
 *
 * Users change it per mesh by role name (`mesh.clientStack.insertBefore('retry', { role, make })`,
 * `.replace()`, `.remove()`); destinations rebuild their stacks on the next call.
 */
import type CircuitBreaker from 'opossum'
import type { Balancer } from '../balance/balancer.js'
import { pickFilter } from '../balance/pick-filter.js'
import type { ServicePolicy } from '../config/mesh-options.js'
import { deadlineFilter } from '../deadline/deadline-filter.js'
import { perTryTimeoutFilter } from '../deadline/per-try-timeout-filter.js'
import { breakerFilter } from '../resilience/breaker-filter.js'
import type { RetryBudget } from '../resilience/retry-budget.js'
import { retryFilter } from '../resilience/retry-filter.js'
import { mirrorFilter } from '../routing/mirror-filter.js'
import { routeFilter } from '../routing/route-filter.js'
import type { RouteTable } from '../routing/route-table.js'
import { StackSpec, type RoleSpec } from '../stack/stack-spec.js'
import { metricsFilter } from '../telemetry/metrics-filter.js'
import type { MeshMetrics } from '../telemetry/metrics.js'
import { traceFilter } from '../telemetry/trace-filter.js'
import type { Filter, StackEnv } from './call-context.js'
import type { ClientProtocol } from './client-protocol.js'

/** What a role's `make` gets: one destination's state and policy, and the transport. */
export interface ClientStackParams<Req = unknown, Res = unknown> {
  readonly service: string
  readonly policy: ServicePolicy
  readonly routes: RouteTable | undefined
  readonly balancer: Balancer
  readonly budget: RetryBudget | undefined
  readonly breaker: CircuitBreaker | undefined
  readonly metrics: MeshMetrics
  readonly protocol: ClientProtocol<Req, Res>
  readonly env: StackEnv
}

export type ClientRole = RoleSpec<ClientStackParams, Filter<unknown, unknown>>

/** The built-in role names, outermost first. */
export const ClientRoles = {
  metrics: 'metrics',
  route: 'route',
  deadline: 'deadline',
  trace: 'trace',
  mirror: 'mirror',
  retry: 'retry',
  breaker: 'breaker',
  pick: 'pick',
  perTryTimeout: 'per-try-timeout',
} as const

type P = ClientStackParams<never, never>
const role = (name: string, make: (p: P) => Filter<never, never> | undefined): ClientRole => ({ role: name, make: make as unknown as ClientRole['make'] })

/**
 * The default roles. Where each sits, and why:
 * - metrics outermost: one duration per call as the caller saw it, retries included; calls that
 *   fail before any attempt (open breaker, no endpoint, spent deadline, injected abort) count too.
 * - route before deadline: a rule's timeout shortens the deadline that the deadline role then checks
 *   and writes; its retries and per-try timeout are read further in.
 * - deadline and trace before mirror: the shadow gets the same headers as the primary.
 * - mirror outside retry: one copy per call, not per attempt.
 * - retry outside breaker and pick: the breaker counts attempts (one budget covers all of them), and
 *   each retry is a fresh pick that avoids the endpoints already tried.
 * - per-try timeout inside pick: it bounds one attempt at one endpoint.
 * - (identity: mTLS of the attempt's connection will sit here, between per-try timeout and the protocol.)
 */
export function defaultClientRoles(): ClientRole[] {
  return [
    role(ClientRoles.metrics, (p) => metricsFilter(p.protocol)),
    role(ClientRoles.route, (p) => {
      const { requestInfo, abortResponse, mirror } = p.protocol
      if (p.routes === undefined || requestInfo === undefined || abortResponse === undefined) return undefined
      return routeFilter(p.routes, { requestInfo, abortResponse, mirror }, p.metrics, (revision) => p.balancer.pickShadow(revision), p.env)
    }),
    role(ClientRoles.deadline, (p) => deadlineFilter(p.protocol, p.env)),
    role(ClientRoles.trace, (p) => traceFilter(p.protocol)),
    role(ClientRoles.mirror, (p) => (p.routes === undefined ? undefined : mirrorFilter(p.protocol))),
    role(ClientRoles.retry, (p) => (p.policy.retries && p.budget ? retryFilter(p.protocol, p.policy.retries, p.budget, p.metrics, p.env) : undefined)),
    role(ClientRoles.breaker, (p) => (p.breaker === undefined ? undefined : breakerFilter(p.breaker, p.protocol))),
    role(ClientRoles.pick, (p) => pickFilter(p.balancer, p.protocol, p.env)),
    role(ClientRoles.perTryTimeout, (p) => (p.policy.retries || p.routes !== undefined ? perTryTimeoutFilter(p.env) : undefined)),
  ]
}

/** A mesh's client stack: the default roles until a user changes them. */
export class ClientStack extends StackSpec<ClientStackParams, Filter<unknown, unknown>> {
  constructor(roles: readonly ClientRole[] = defaultClientRoles()) {
    super(roles)
  }
}
