/**
 * register(mesh): makes `meshlet:///<service>` targets resolve through this mesh. Explicit, with
 * no import side effects; the grpc-js resolver and LB policy are registered on the first call.
 */
import type { Mesh } from '@meshlet/core'
import { experimental } from '@grpc/grpc-js'
import { MeshletLoadBalancer, MeshletLoadBalancingConfig } from './load-balancer-meshlet.js'
import { addRegistration } from './registry.js'
import { MeshletResolver } from './resolver-meshlet.js'
import { LB_POLICY_NAME } from './service-config.js'

export const SCHEME = 'meshlet'

export interface RegisterOptions {
  /**
   * Methods (`/pkg.Service/Method`) or whole services (`pkg.Service`) whose calls may be repeated:
   * they are also retried on RESOURCE_EXHAUSTED, ABORTED, INTERNAL and UNKNOWN (others on
   * UNAVAILABLE only).
   */
  idempotent?: readonly string[]
}

let installed = false

/** Registers `mesh` for `meshlet:` targets; returns a function that unregisters it. */
export function register(mesh: Mesh, options: RegisterOptions = {}): () => void {
  if (!installed) {
    experimental.registerResolver(SCHEME, MeshletResolver)
    experimental.registerLoadBalancerType(LB_POLICY_NAME, MeshletLoadBalancer, MeshletLoadBalancingConfig)
    installed = true
  }
  return addRegistration(mesh, [...(options.idempotent ?? [])])
}

/** The target for a mesh service: `meshlet:///payments`. */
export function meshTarget(service: string): string {
  return `${SCHEME}:///${service}`
}
