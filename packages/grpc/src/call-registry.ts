/**
 * How an attempt tells the picker which endpoint the client stack chose for it. grpc-js gives a
 * picker the attempt's metadata and nothing else, so the attempt files its endpoint under an id
 * carried in the metadata (`meshlet-call`); the picker takes the id out (it never reaches the wire:
 * grpc-js hands every pick its own copy of the metadata, and sends that copy) and pins the attempt
 * to that endpoint's subchannel.
 */
import { randomBytes } from 'node:crypto'
import type { EndpointState } from '@meshlet/core'
import type { Metadata } from '@grpc/grpc-js'

export const CALL_KEY = 'meshlet-call'

const calls = new Map<string, EndpointState>()
let counter = 0
/** Per process: a mark that came from elsewhere (metadata an app forwards) names no call here. */
const prefix = `${randomBytes(6).toString('base64url')}.`

/** Files `endpoint` and marks `metadata` with its id; untrack(id) when the attempt ends. */
export function track(metadata: Metadata, endpoint: EndpointState): string {
  const id = prefix + (++counter).toString(36)
  calls.set(id, endpoint)
  metadata.set(CALL_KEY, id)
  return id
}

export function untrack(id: string): void {
  calls.delete(id)
}

/** The endpoint an attempt's metadata pins it to; `take` also removes the mark from that metadata. */
export function pinnedEndpoint(metadata: Metadata, take: boolean): EndpointState | undefined {
  const v = metadata.get(CALL_KEY)
  if (v.length === 0) return undefined
  if (take) metadata.remove(CALL_KEY)
  return typeof v[0] === 'string' ? calls.get(v[0]) : undefined
}

/** Attempts filed and not yet ended (for tests: nothing may leak). */
export function trackedCalls(): number {
  return calls.size
}
