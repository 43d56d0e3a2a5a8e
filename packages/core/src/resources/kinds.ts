import { ResourceRegistry, type ResourceKind } from './resource.js'
import { routeKind } from './route.js'
import { servicePolicyKind } from './service-policy.js'

/** Every built-in kind; later issues append Route, AuthorizationPolicy, Trigger and Broker here. */
export const builtinKinds: readonly ResourceKind[] = [servicePolicyKind, routeKind]

/** A new registry holding the built-in kinds (a fresh one each call, so tests may add kinds freely). */
export function builtinResourceRegistry(): ResourceRegistry {
  return new ResourceRegistry(builtinKinds)
}
