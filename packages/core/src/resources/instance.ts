/**
 * Instances are not resources: a serving process registers itself with a lease and heartbeats
 * to keep it. The control endpoint serves them in the resource shape (kind `Instance`, the lease id
 * as name) so lists and watch events look the same for everything.
 */
import { NAME, NAME_HINT } from '../config/mesh-options.js'
import * as s from '../config/schema.js'
import type { API_VERSION } from './resource.js'

export const INSTANCE_KIND = 'Instance'
export const instanceProtocols = ['http', 'https', 'h2c', 'grpc'] as const
export const DEFAULT_INSTANCE_TTL = 15_000

const name = s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63 })

/** The body of `POST /v1/instances`. */
export const instanceRegistrationSchema = s.object(
  {
    service: name,
    namespace: name,
    revision: name,
    zone: s.string({ maxLength: 128 }),
    address: s.string({ pattern: /^[A-Za-z0-9.:-]+$/, patternHint: 'an IP address or host name (no scheme, port or brackets)', maxLength: 253, minLength: 1, description: 'Default: the address the registration came from.' }),
    port: s.number({ integer: true, min: 1, max: 65_535 }),
    protocols: s.array(s.oneOf(instanceProtocols), { minItems: 1, maxItems: instanceProtocols.length, description: 'Default ["http"].' }),
    metadata: s.record(s.string({ pattern: /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, patternHint: 'a key of letters, digits, ".", "_", "/" and "-"', maxLength: 128 }), s.string({ maxLength: 1024 }), { maxEntries: 64 }),
    ttl: s.duration({ min: 100, max: 3_600_000, description: 'Lease time; heartbeat at about a third of it. Default 15s.' }),
  },
  { required: ['service', 'port'] },
)

export type InstanceRegistration = s.InferInput<typeof instanceRegistrationSchema>

export interface InstanceSpec {
  service: string
  revision?: string
  zone?: string
  address: string
  port: number
  protocols: string[]
  metadata: Record<string, string>
  /** Lease time in milliseconds. */
  ttl: number
}

export interface InstanceStatus {
  /** When the lease runs out unless renewed (ISO 8601). */
  expiresAt: string
  lastHeartbeat: string
  /** What the instance last reported about itself in a heartbeat (its endpoints' state, load, …). */
  report?: Record<string, unknown>
}

/** An instance as the control endpoint serves it: `metadata.name` is the lease id. */
export interface Instance {
  apiVersion: typeof API_VERSION
  kind: typeof INSTANCE_KIND
  metadata: { name: string; namespace: string; resourceVersion: number; creationTimestamp: string }
  spec: InstanceSpec
  status: InstanceStatus
}
