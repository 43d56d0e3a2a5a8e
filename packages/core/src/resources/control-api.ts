/**
 * The wire contract of the control endpoint's HTTP/JSON API, shared by the server
 * (`@meshlet/control`) and the control client in core.
 */
import { ErrorCodes, type ErrorCode } from '../errors.js'
import type { Instance } from './instance.js'
import type { Resource } from './resource.js'

/**
 * The codes the control endpoint answers with in `{ error: { code, message } }` bodies: a view of
 * the one registry in errors.ts (same strings, same HTTP statuses), not a second family.
 */
export const ControlErrorCodes = {
  BAD_REQUEST: ErrorCodes.BAD_REQUEST,
  UNAUTHENTICATED: ErrorCodes.UNAUTHENTICATED,
  FORBIDDEN: ErrorCodes.FORBIDDEN,
  NOT_FOUND: ErrorCodes.NOT_FOUND,
  UNKNOWN_KIND: ErrorCodes.UNKNOWN_KIND,
  METHOD_NOT_ALLOWED: ErrorCodes.METHOD_NOT_ALLOWED,
  CONFLICT: ErrorCodes.CONFLICT,
  RESYNC: ErrorCodes.RESYNC,
  TOO_LARGE: ErrorCodes.TOO_LARGE,
  CONFIG_INVALID: ErrorCodes.CONFIG_INVALID,
  LEASE_NOT_FOUND: ErrorCodes.LEASE_NOT_FOUND,
  STORE_CORRUPT: ErrorCodes.STORE_CORRUPT,
  STORE_FAILED: ErrorCodes.STORE_FAILED,
  STORE_LOCKED: ErrorCodes.STORE_LOCKED,
  INTERNAL: ErrorCodes.INTERNAL,
  UNSUPPORTED_MEDIA_TYPE: ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
  QUOTA_EXCEEDED: ErrorCodes.QUOTA_EXCEEDED,
  // The embedded broker's ingress.
  EVENT_INVALID: ErrorCodes.EVENT_INVALID,
  EVENT_TOO_LARGE: ErrorCodes.EVENT_TOO_LARGE,
  BROKER_UNAVAILABLE: ErrorCodes.BROKER_UNAVAILABLE,
} as const satisfies Record<string, ErrorCode>

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

/**
 * `GET /v1/{kind}`, `GET /v1/{kind}/{namespace}`, `GET /v1/instances`, paged as kube-apiserver
 * pages: `?limit=N` (and at most LIST_PAGE_BYTES of items a page whatever the limit); while
 * `metadata.continue` is set, ask again with `?continue=` it for the next page. Every page of one
 * list shows the store at the first page's resourceVersion; a continue token whose snapshot the
 * endpoint no longer keeps is answered 410 MESHLET_ERR_RESYNC (list again from the start).
 */
export interface ListResponse<T = StoredObject> {
  apiVersion: 'meshlet.dev/v1'
  kind: 'List'
  /**
   * `resourceVersion`: the store's when the list was taken (its first page): watch from here with
   * `?since=`. `continue`: an opaque token for the next page, absent on the last one.
   * `remainingItemCount`: items after this page, with `continue`.
   */
  metadata: { resourceVersion: number; continue?: string; remainingItemCount?: number }
  items: T[]
}

/** Items of one list page take at most this many bytes as JSON (one item always fits, however large). */
export const LIST_PAGE_BYTES = 4 * 1024 * 1024
/** The largest `limit` a list takes. */
export const MAX_LIST_LIMIT = 10_000

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
