/**
 * The vocabulary of the server stack: role names in stack order, and what a role is. One server
 * stack serves node:http, Express, Fastify and gRPC; each role is written once, in its own file.
 */
import type { Refusal } from '../admission/refusal.js'
import type { InboundCall } from './inbound-call.js'

/**
 * Every role the server stack knows, outermost first; a stack holds a subset, always in this order.
 * - `drain`: refuses new calls once the mesh stops accepting (they go to another instance).
 * - `identity`: slot, not built yet (mTLS): will set the verified peer identity on the call and
 *   strip inbound headers that claim one. Sits before authz, which reads it.
 * - `authz`: slot, not built yet: will refuse by AuthorizationPolicy (source identity, namespace,
 *   method, path, headers). Before deadline and admission, so a denied caller costs no queue place.
 * - `deadline`: reads `meshlet-deadline` and the transport's own deadline; refuses a malformed or past one.
 * - `trace`: extracts the trace context the app's outbound calls continue.
 * - `admission`: shedding, rate limits, concurrency limit and its queue; the only role that may defer.
 * - `telemetry`: counts the call in flight (what drain waits for) and records its duration.
 * - `load-report`: tells the client this server's load, for its balancer.
 */
export const SERVER_ROLES = ['drain', 'identity', 'authz', 'deadline', 'trace', 'admission', 'telemetry', 'load-report'] as const
export type ServerRoleName = (typeof SERVER_ROLES)[number]

/** Returned by `arrive` when the role will decide later (through `resume` or `refuse`). */
export const DEFER = Symbol('meshlet.server.defer')

/** How a role that deferred a call hands it back to the stack. */
export interface CallResumer {
  /** The deferring role passed the call: the next role runs. */
  resume(call: InboundCall): void
  /** The deferring role refused the call. */
  refuse(call: InboundCall, refusal: Refusal): void
}

/**
 * One role. Contract: `arrive` runs once per call, in stack order, and returns undefined (pass),
 * a Refusal (the call stops here and never reaches the app), or DEFER (then exactly one later
 * `resume` or `refuse`, never synchronously from `arrive`). `end` runs once, innermost first, for
 * every role the call passed, when the call ended or was refused further in; `complete` is true only
 * when the app's response went out in full. `abandon` runs when the call ended while this role
 * deferred it (the client went away).
 */
export interface ServerRole {
  readonly name: ServerRoleName
  arrive(call: InboundCall, stack: CallResumer): Refusal | typeof DEFER | undefined
  end?(call: InboundCall, complete: boolean): void
  abandon?(call: InboundCall): void
}
