/**
 * The request path as functions ("your server as a function"): a Service answers a request, a
 * Filter wraps a Service. Stacks are listed outermost first.
 */
import type { EndpointState } from '../balance/endpoint-state.js'

export interface CallContext {
  /** The destination service name. */
  readonly service: string
  /** Absolute deadline in ms since the epoch; Infinity when there is none. */
  deadline: number
  /** Aborted when the caller gives up or the deadline passes. */
  signal: AbortSignal | undefined
  /** 1 for the first attempt. */
  attempt: number
  /** The endpoint chosen for the current attempt (set by the balance filter). */
  endpoint: EndpointState | undefined
  /** Endpoints already tried by this call; the picker avoids them while others are available. */
  tried: EndpointState[] | undefined
  /** The request may be repeated without changing its effect (method or explicit marker). */
  idempotent: boolean
  /** The revision a route chose for this call; the balancer prefers its endpoints. */
  revision?: string | undefined
  /** Retries allowed for this call when a route rule sets them (else the destination's). */
  retryAttempts?: number | undefined
  /** The key of a ring-hash pick (a request header's value). */
  hashKey?: string | undefined
  /** Longest wait for one attempt's response headers, ms; Infinity when only the deadline bounds it. */
  perTryTimeout: number
  /** performance.now() when the call started. */
  readonly start: number
}

export type Service<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>
export type Filter<Req, Res> = (req: Req, ctx: CallContext, next: Service<Req, Res>) => Promise<Res>

/** A filter with a role name, so a stack can be inspected and a role replaced. */
export interface StackEntry<Req, Res> {
  readonly role: string
  readonly filter: Filter<Req, Res>
}

/** Builds one Service from filters listed outermost first around `terminal`. */
export function compose<Req, Res>(entries: readonly StackEntry<Req, Res>[], terminal: Service<Req, Res>): Service<Req, Res> {
  let service = terminal
  for (let i = entries.length - 1; i >= 0; i--) {
    const filter = entries[i]!.filter
    const next = service
    service = (req, ctx) => filter(req, ctx, next)
  }
  return service
}

export function newCallContext(service: string, deadline: number, signal: AbortSignal | undefined, idempotent: boolean, perTryTimeout = Infinity): CallContext {
  return { service, deadline, signal, attempt: 1, endpoint: undefined, tried: undefined, idempotent, revision: undefined, perTryTimeout, start: performance.now() }
}
