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

/** Most triggers one instance may advertise, and the largest one (its JSON, in UTF-16 code units). */
export const MAX_ADVERTISED_TRIGGERS = 32
export const MAX_ADVERTISED_TRIGGER_SIZE = 16 * 1024
const MAX_TRIGGER_DEPTH = 16

/**
 * An event trigger the instance serves, as core knows it without @meshlet/events: its other fields
 * (`filter`, `filters`, `delivery`) pass through unread; events' `AdvertisedTrigger` types them.
 */
export interface AdvertisedTriggerEntry {
  name: string
  broker: string
  path: string
}

/**
 * Core cannot import @meshlet/events, so it bounds an advertised trigger by shape only: a JSON
 * object with string `name`, `broker` and `path`, nested at most 16 deep, at most 16 KiB as JSON.
 * Its fields (filters, delivery) are checked by events' `advertisedTriggerSchema`, on the publisher
 * side before it is sent and by the broker before it is used.
 */
export const advertisedTriggerBound: s.Schema<AdvertisedTriggerEntry> = {
  description: 'A trigger declared in code by events(mesh).trigger(): { name, broker, path, filter?, filters?, delivery? }.',
  check(v, path, issues) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push({ path, message: 'expected an object { name, broker, path, ... }' })
    const before = issues.length
    for (const key of ['name', 'broker', 'path'] as const) {
      const field = (v as Record<string, unknown>)[key]
      if (typeof field !== 'string' || field.length === 0 || field.length > 253) issues.push({ path: `${path}.${key}`, message: 'expected a non-empty string of at most 253 characters' })
    }
    if (!isBoundedJson(v, MAX_TRIGGER_DEPTH)) issues.push({ path, message: `must be plain JSON (strings, finite numbers, booleans, null, lists, objects) nested at most ${MAX_TRIGGER_DEPTH} deep` })
    else if (JSON.stringify(v).length > MAX_ADVERTISED_TRIGGER_SIZE) issues.push({ path, message: `is over ${MAX_ADVERTISED_TRIGGER_SIZE} characters as JSON` })
    return issues.length === before ? (v as AdvertisedTriggerEntry) : undefined
  },
  jsonSchema: () => ({ type: 'object', required: ['name', 'broker', 'path'], properties: { name: { type: 'string' }, broker: { type: 'string' }, path: { type: 'string' } } }),
}

function isBoundedJson(v: unknown, depth: number): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true
  if (typeof v === 'number') return Number.isFinite(v)
  if (typeof v !== 'object' || depth === 0) return false
  if (Array.isArray(v)) return v.every((x) => isBoundedJson(x, depth - 1))
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return false
  return Object.values(v).every((x) => isBoundedJson(x, depth - 1))
}

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
    triggers: s.array(advertisedTriggerBound, { maxItems: MAX_ADVERTISED_TRIGGERS, description: 'Event triggers this instance serves (the broker delivers to their paths).' }),
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
  /** Event triggers advertised by the instance (`AdvertisedTrigger` of @meshlet/events); absent when none. */
  triggers?: AdvertisedTriggerEntry[]
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
