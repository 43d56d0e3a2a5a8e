import { ResourceRegistry, type ResourceKind } from './resource.js'
import { servicePolicyKind } from './service-policy.js'

/** Every built-in kind; later issues append Route, AuthorizationPolicy, Trigger and Broker here. */
export const builtinKinds: readonly ResourceKind[] = [servicePolicyKind]

/** A new registry holding the built-in kinds (a fresh one each call, so tests may add kinds freely). */
export function builtinResourceRegistry(): ResourceRegistry {
  return new ResourceRegistry(builtinKinds)
}
