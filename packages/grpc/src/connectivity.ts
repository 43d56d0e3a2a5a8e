/**
 * Which endpoints of a destination have a connected subchannel, as the meshlet LB policies of the
 * channels to it see them. The client stack's pick reads it (`ClientProtocol.usable`) so that an
 * attempt is pinned to a connected endpoint while one is; the picker still queues or fails an
 * attempt pinned to one that is not (yet).
 */
import type { Destination, EndpointState } from '@meshlet/core'

export interface ConnectivityView {
  /** Keys (`host|port`) of the endpoints whose subchannel is READY. */
  readonly ready: ReadonlySet<string>
  /** Every endpoint of the channel is READY. */
  readonly allReady: boolean
}

const views = new WeakMap<Destination, Map<object, ConnectivityView>>()

/** Publishes (or, with undefined, withdraws) one channel's view of `dest`. */
export function setConnectivity(dest: Destination, channel: object, view: ConnectivityView | undefined): void {
  let byChannel = views.get(dest)
  if (view === undefined) return void byChannel?.delete(channel)
  if (byChannel === undefined) views.set(dest, (byChannel = new Map()))
  byChannel.set(channel, view)
}

const urlKeys = new WeakMap<EndpointState, string>()
/** `host|port` of an endpoint's URL, as subchannel addresses are keyed. */
export function keyOfState(e: EndpointState): string {
  let k = urlKeys.get(e)
  if (k === undefined) {
    const u = new URL(e.url)
    k = `${u.hostname.replace(/^\[|\]$/g, '')}|${u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80'}`
    urlKeys.set(e, k)
  }
  return k
}

/** A filter for picks: undefined while every endpoint is connected (or nothing is known). */
export function usableFor(dest: Destination): ((e: EndpointState) => boolean) | undefined {
  const byChannel = views.get(dest)
  if (byChannel === undefined || byChannel.size === 0) return undefined
  for (const v of byChannel.values()) if (v.allReady) return undefined
  return (e) => {
    const k = keyOfState(e)
    for (const v of byChannel.values()) if (v.ready.has(k)) return true
    return false
  }
}
