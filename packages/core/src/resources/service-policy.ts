/**
 * `ServicePolicy`: the client policy of one destination service (timeout, retries, balancer,
 * breaker, outlier ejection), with exactly the fields and rules of `createMesh`'s
 * `services.<name>` options, because both are built from the same field schemas.
 */
import type { ConfigIssue } from '../errors.js'
import { NAME, NAME_HINT, policyFields, type PolicyInput } from '../config/mesh-options.js'
import * as s from '../config/schema.js'
import { defineKind, type Resource } from './resource.js'

export const servicePolicySpecSchema = s.object(
  {
    service: s.string({ pattern: NAME, patternHint: NAME_HINT, description: 'The destination service this policy applies to.' }),
    ...policyFields,
  },
  { required: ['service'], description: 'Client policy for calls to one service; unset fields keep the mesh defaults.' },
)

/** A validated ServicePolicy spec: durations in milliseconds. Pass it to `resolvePolicy` as a layer. */
export type ServicePolicySpec = s.Infer<typeof servicePolicySpecSchema> & PolicyInput
export type ServicePolicyResource = Resource<ServicePolicySpec>

export const servicePolicyKind = defineKind<ServicePolicySpec>({
  kind: 'ServicePolicy',
  plural: 'servicepolicies',
  aliases: ['servicepolicy', 'sp'],
  description: 'Client policy (timeout, retries, balancer, breaker, outlier ejection) for calls to one service.',
  spec: servicePolicySpecSchema,
  crossCheck(spec: ServicePolicySpec, issues: ConfigIssue[]) {
    const b = spec.retries === false ? undefined : spec.retries?.backoff
    if (b?.base !== undefined && b.max !== undefined && b.base > b.max) {
      issues.push({ path: 'spec.retries.backoff', message: `base (${b.base}ms) is larger than max (${b.max}ms)` })
    }
  },
})
