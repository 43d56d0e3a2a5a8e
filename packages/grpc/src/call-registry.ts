/**
 * What the client interceptor tells the picker about a call. grpc-js gives a picker the attempt's
 * metadata and nothing else, so the interceptor files the call's context under an id carried in
 * the metadata (`meshlet-call`); the picker takes the id out (it never reaches the wire: grpc-js
 * hands every pick its own copy of the metadata, and sends that copy) and finds the call: the
 * endpoints its earlier attempts tried (a retry goes elsewhere while it can), its routed revision
 * and ring-hash key, whether it streams (a stream's lifetime is no latency sample), and the
 * endpoint a mirrored copy must go to.
 */
import { randomBytes } from 'node:crypto'
import type { CallContext, EndpointState } from '@meshlet/core'
import type { Metadata } from '@grpc/grpc-js'

export const CALL_KEY = 'meshlet-call'

export interface TrackedCall {
  readonly ctx: CallContext
  readonly streaming: boolean
  /** A mirrored copy goes to this endpoint or nowhere: never another, never retried. */
  readonly pinned?: EndpointState
}

const calls = new Map<string, TrackedCall>()
let counter = 0
/** Per process: a mark that came from elsewhere (metadata an app forwards) names no call here. */
const prefix = `${randomBytes(6).toString('base64url')}.`

/** Files `call` and marks `metadata` with its id; untrack(id) when the call ends. */
export function track(metadata: Metadata, call: TrackedCall): string {
  const id = prefix + (++counter).toString(36)
  calls.set(id, call)
  metadata.set(CALL_KEY, id)
  return id
}

export function untrack(id: string): void {
  calls.delete(id)
}

/** The call an attempt's metadata names, the mark removed from that metadata. */
export function takeCall(metadata: Metadata): TrackedCall | undefined {
  const v = metadata.get(CALL_KEY)
  if (v.length === 0) return undefined
  metadata.remove(CALL_KEY)
  return typeof v[0] === 'string' ? calls.get(v[0]) : undefined
}

/** Calls filed and not yet ended (for tests: nothing may leak). */
export function trackedCalls(): number {
  return calls.size
}
