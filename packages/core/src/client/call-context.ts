/**
 * The client stack's context for one outbound call, and the Service/Filter types specialised to it.
 * Filters read and write only what their docblock says; the context lives as long as the call.
 */
import type { EndpointState } from '../balance/endpoint-state.js'
import type { StackClassifier } from '../stack/response-classifier.js'
import type { StackEntry as GenericEntry, StackFilter, StackService } from '../stack/service.js'

export interface CallContext {
  /** The destination service name. */
  readonly service: string
  /** Absolute deadline in ms since the epoch; Infinity when there is none. */
  deadline: number
  /** Aborted when the caller gives up or the deadline passes. */
  signal: AbortSignal | undefined
  /** 1 for the first attempt. */
  attempt: number
  /** The endpoint chosen for the current attempt (set by the pick role). */
  endpoint: EndpointState | undefined
  /** Endpoints already tried by this call; the picker avoids them while others are available. */
  tried: EndpointState[] | undefined
  /** The request may be repeated without changing its effect (method or explicit marker). */
  idempotent: boolean
  /** The revision a route chose for this call; the balancer prefers its endpoints. */
  revision?: string | undefined
  /** Retries allowed for this call when a route rule sets them (else the destination's); 0 when the inbound call it serves is itself a retry. */
  retryAttempts?: number | undefined
  /** The key of a ring-hash pick (a request header's value). */
  hashKey?: string | undefined
  /** Longest wait for one attempt's response headers, ms; Infinity when only the deadline bounds it. */
  perTryTimeout: number
  /** When the current attempt must have its response headers (ms epoch; set by the per-try timeout role). */
  attemptDeadline: number
  /** The inbound call this call is made for is a retry of its caller's: the retry role does not retry (resilience/retry-marker.ts). */
  callerRetrying: boolean
  /** The shadow endpoint a route chose to copy this call to (sent by the mirror role). */
  mirror?: EndpointState | undefined
  /** performance.now() when the call started. */
  readonly start: number
}

export type Service<Req, Res> = StackService<Req, Res, CallContext>
export type Filter<Req, Res> = StackFilter<Req, Res, CallContext>
export type StackEntry<Req, Res> = GenericEntry<Req, Res, CallContext>
export type ResponseClassifier<Req, Res> = StackClassifier<Req, Res, CallContext>

export function newCallContext(service: string, deadline: number, signal: AbortSignal | undefined, idempotent: boolean, perTryTimeout = Infinity): CallContext {
  return { service, deadline, signal, attempt: 1, endpoint: undefined, tried: undefined, idempotent, revision: undefined, perTryTimeout, attemptDeadline: Infinity, callerRetrying: false, mirror: undefined, start: performance.now() }
}

/** Methods that may be repeated (RFC 9110 §9.2.2); POST and PATCH are not. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT.has(method)
}

/** Time and chance as the client stack reads them: injectable, so tests control both. */
export interface StackEnv {
  /** Wall-clock ms since the epoch (deadlines are absolute). */
  readonly now: () => number
  /** Uniform in [0, 1). */
  readonly random: () => number
}

export const systemEnv: StackEnv = { now: Date.now, random: Math.random }
