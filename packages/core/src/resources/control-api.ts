/**
 * The wire contract of the control endpoint's HTTP/JSON API, shared by the server
 * (`@meshlet/control`) and the control client in core.
 */
import type { Instance } from './instance.js'
import type { Resource } from './resource.js'

/** Codes in `{ error: { code, message } }` bodies. */
export const ControlErrorCodes = {
  BAD_REQUEST: 'MESHLET_ERR_BAD_REQUEST',
  UNAUTHENTICATED: 'MESHLET_ERR_UNAUTHENTICATED',
  FORBIDDEN: 'MESHLET_ERR_FORBIDDEN',
  NOT_FOUND: 'MESHLET_ERR_NOT_FOUND',
  UNKNOWN_KIND: 'MESHLET_ERR_UNKNOWN_KIND',
  METHOD_NOT_ALLOWED: 'MESHLET_ERR_METHOD_NOT_ALLOWED',
  CONFLICT: 'MESHLET_ERR_CONFLICT',
  RESYNC: 'MESHLET_ERR_RESYNC',
  TOO_LARGE: 'MESHLET_ERR_TOO_LARGE',
  CONFIG_INVALID: 'MESHLET_ERR_CONFIG_INVALID',
  LEASE_NOT_FOUND: 'MESHLET_ERR_LEASE_NOT_FOUND',
  STORE_CORRUPT: 'MESHLET_ERR_STORE_CORRUPT',
  STORE_FAILED: 'MESHLET_ERR_STORE_FAILED',
  STORE_LOCKED: 'MESHLET_ERR_STORE_LOCKED',
  INTERNAL: 'MESHLET_ERR_INTERNAL',
} as const

export type ControlErrorCode = (typeof ControlErrorCodes)[keyof typeof ControlErrorCodes]

export interface ControlErrorBody {
  error: {
    code: ControlErrorCode
    message: string
    /** On 422: every invalid field. */
    issues?: { path: string; message: string }[]
  }
}

export type StoredObject = Resource | Instance

/** One line of `GET /v1/watch` (NDJSON), or the `data:` of one SSE event. */
export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; resourceVersion: number; object: StoredObject }
  | { type: 'BOOKMARK'; resourceVersion: number; object: null }

/** `GET /v1/{kind}`, `GET /v1/{kind}/{namespace}`, `GET /v1/instances`. */
export interface ListResponse<T = StoredObject> {
  apiVersion: 'meshlet.dev/v1'
  kind: 'List'
  /** The store's resource version when the list was taken: watch from here with `?since=`. */
  metadata: { resourceVersion: number }
  items: T[]
}

/** `POST /v1/instances` → 201. */
export interface RegisterResponse {
  id: string
  /** Lease time in milliseconds. */
  ttl: number
  expiresAt: string
  instance: Instance
}

/** `POST /v1/instances/{id}/heartbeat` → 200. */
export interface HeartbeatResponse {
  id: string
  ttl: number
  expiresAt: string
}
