/**
 * The kinds the control endpoint serves and its CLI validates: core's (ServicePolicy, Route) and
 * the event kinds (Trigger, Broker). One list, so `apply`, `get`, `schema` and the endpoint agree.
 */
import { builtinKinds, ResourceRegistry } from '@meshlet/core'
import { eventKinds } from '@meshlet/events'

/** A new registry of every kind the control endpoint serves (a fresh one per call; tests may add kinds). */
export function controlResourceRegistry(): ResourceRegistry {
  return new ResourceRegistry([...builtinKinds, ...eventKinds])
}
