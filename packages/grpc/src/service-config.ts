/**
 * The grpc-js service config a `meshlet:///<service>` channel gets: the meshlet LB policy, and
 * nothing else. Retries, the retry budget, timeouts and the per-try timeout are the mesh's client
 * stack's (one implementation for HTTP and gRPC), so grpc-js is given no retryPolicy and no
 * retryThrottling: a call is never retried twice over.
 */
import type { experimental } from '@grpc/grpc-js'

type ServiceConfig = Parameters<experimental.ResolverListener>[2] extends infer S ? (S extends { ok: true; value: infer V } ? V : never) : never

export const LB_POLICY_NAME = 'meshlet'

export function serviceConfigFor(service: string): ServiceConfig {
  return { loadBalancingConfig: [{ [LB_POLICY_NAME]: { service } }], methodConfig: [] }
}
