/**
 * The mesh policy of one destination as grpc-js service config: what grpc-js implements itself
 * (retries with pushback and the overall deadline, retry throttling) is configured, not redone.
 *
 * - retries: `attempts` retries after the first (grpc-js caps attempts at 5 in all), exponential
 *   backoff from `backoff.base` to `backoff.max`; UNAVAILABLE for every method, and
 *   RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN too for methods marked idempotent. Never
 *   DEADLINE_EXCEEDED. grpc-js honours `grpc-retry-pushback-ms` and never retries past the deadline.
 * - retry budget → retryThrottling: each failure costs a token, each success earns `percent/100`,
 *   and retries stop while fewer than half the tokens are left.
 * - the call timeout is applied by the client interceptor (with the inherited deadline), not here.
 */
import type { ServicePolicy } from '@meshlet/core'
import type { experimental } from '@grpc/grpc-js'
import { DEFAULT_RETRYABLE, IDEMPOTENT_RETRYABLE } from './grpc-status.js'

type ServiceConfig = Parameters<experimental.ResolverListener>[2] extends infer S ? (S extends { ok: true; value: infer V } ? V : never) : never
type MethodConfig = ServiceConfig['methodConfig'][number]

export const LB_POLICY_NAME = 'meshlet'
/** grpc-js caps maxAttempts at 5. */
const MAX_ATTEMPTS = 5

const seconds = (ms: number): string => `${Math.max(ms, 1) / 1000}s`

/**
 * `idempotent` names methods (`/pkg.Service/Method`) or whole services (`pkg.Service`) whose calls
 * may be repeated.
 */
export function serviceConfigFor(service: string, policy: ServicePolicy, idempotent: readonly string[]): ServiceConfig {
  const methodConfig: MethodConfig[] = []
  const r = policy.retries
  if (r && r.attempts > 0) {
    const retryPolicy = (codes: readonly number[]) => ({
      maxAttempts: Math.min(r.attempts + 1, MAX_ATTEMPTS),
      initialBackoff: seconds(r.backoffBase),
      maxBackoff: seconds(Math.max(r.backoffMax, r.backoffBase)),
      backoffMultiplier: 2,
      retryableStatusCodes: [...codes],
    })
    const names = idempotent.map((n) => {
      const m = /^\/?([^/]+)\/([^/]+)$/.exec(n)
      return m ? { service: m[1]!, method: m[2]! } : { service: n.replace(/^\//, '') }
    })
    if (names.length > 0) methodConfig.push({ name: names, retryPolicy: retryPolicy(IDEMPOTENT_RETRYABLE) })
    methodConfig.push({ name: [{}], retryPolicy: retryPolicy(DEFAULT_RETRYABLE) })
  }
  return {
    loadBalancingConfig: [{ [LB_POLICY_NAME]: { service } }],
    methodConfig,
    ...(r && r.attempts > 0 ? { retryThrottling: { maxTokens: 100, tokenRatio: Math.max(0.01, Math.min(1, r.budgetPercent / 100)) } } : {}),
  }
}
