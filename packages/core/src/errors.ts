/**
 * The one registry of meshlet errors, for the data plane and the control plane alike. Every code
 * has one entry: the HTTP status and the gRPC status it travels as, whether a call that failed with
 * it may be tried again, and one sentence saying what to do. Errors carry Finagle-style flags
 * (`retryable`, `rejected`) instead of a class tree.
 *
 * Statuses map both ways through the codes: `httpStatusOf(code)` / `grpcStatusOf(code)`, and
 * `codeForHttpStatus(status)` / `codeForGrpcStatus(status)` back. Every status a code uses has a
 * canonical code, so status → code → status is the identity for those, and code → status → code
 * lands on a code with the same statuses. HTTP → gRPC is `grpcStatusForHttp(s)`, the same path.
 *
 * That mapping gives each status the meaning meshlet gives it. It follows grpc/grpc's
 * doc/http-grpc-status-mapping.md (401, 403, 429, 502, 503, other statuses → UNKNOWN) except where
 * meshlet knows more than an intermediary: 400 → INVALID_ARGUMENT (a malformed request, as the
 * server interceptors always answered, not the doc's INTERNAL), 404 → NOT_FOUND (not UNIMPLEMENTED),
 * 500 → INTERNAL (not UNKNOWN), 504 → DEADLINE_EXCEEDED (not UNAVAILABLE: a passed deadline must not
 * be retried). The doc's table is for responses from proxies that carry no grpc-status; grpc-js
 * already applies it to those itself.
 *
 * gRPC statuses are numbers here (core knows no transport): they are grpc-js's `status` values.
 */

const BRAND = Symbol.for('meshlet.error')

/** gRPC status codes (grpc/grpc doc/statuscodes.md), as numbers. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus]

export const ErrorCodes = {
  // Data plane: calls, servers, discovery, options.
  CONFIG_INVALID: 'MESHLET_ERR_CONFIG_INVALID',
  NO_ENDPOINT: 'MESHLET_ERR_NO_ENDPOINT',
  DEADLINE: 'MESHLET_ERR_DEADLINE',
  BREAKER_OPEN: 'MESHLET_ERR_BREAKER_OPEN',
  BUDGET_EXHAUSTED: 'MESHLET_ERR_BUDGET_EXHAUSTED',
  BAD_HEADER: 'MESHLET_ERR_BAD_HEADER',
  DRAINING: 'MESHLET_ERR_DRAINING',
  CLOSED: 'MESHLET_ERR_CLOSED',
  DISCOVERY: 'MESHLET_ERR_DISCOVERY',
  UPSTREAM: 'MESHLET_ERR_UPSTREAM',
  UNKNOWN_SERVICE: 'MESHLET_ERR_UNKNOWN_SERVICE',
  /** Refused by admission control (concurrency limit, queue, shedding) before processing: retry elsewhere. */
  OVERLOADED: 'MESHLET_ERR_OVERLOADED',
  /** Refused by the server's local rate limit (429 with Retry-After) before processing. */
  RATE_LIMITED: 'MESHLET_ERR_RATE_LIMITED',
  /** The caller gave up: its client disconnected, or it aborted the call. */
  CANCELLED: 'MESHLET_ERR_CANCELLED',
  /** A 503 / UNAVAILABLE without a more precise code. */
  UNAVAILABLE: 'MESHLET_ERR_UNAVAILABLE',
  /** A failure status without a more precise code (gRPC UNKNOWN, an unmapped 5xx). */
  UNKNOWN: 'MESHLET_ERR_UNKNOWN',
  // Control plane: the control endpoint's API (`{ error: { code, message } }` bodies) and its client.
  BAD_REQUEST: 'MESHLET_ERR_BAD_REQUEST',
  UNAUTHENTICATED: 'MESHLET_ERR_UNAUTHENTICATED',
  FORBIDDEN: 'MESHLET_ERR_FORBIDDEN',
  NOT_FOUND: 'MESHLET_ERR_NOT_FOUND',
  UNKNOWN_KIND: 'MESHLET_ERR_UNKNOWN_KIND',
  METHOD_NOT_ALLOWED: 'MESHLET_ERR_METHOD_NOT_ALLOWED',
  CONFLICT: 'MESHLET_ERR_CONFLICT',
  RESYNC: 'MESHLET_ERR_RESYNC',
  TOO_LARGE: 'MESHLET_ERR_TOO_LARGE',
  LEASE_NOT_FOUND: 'MESHLET_ERR_LEASE_NOT_FOUND',
  STORE_CORRUPT: 'MESHLET_ERR_STORE_CORRUPT',
  STORE_FAILED: 'MESHLET_ERR_STORE_FAILED',
  STORE_LOCKED: 'MESHLET_ERR_STORE_LOCKED',
  INTERNAL: 'MESHLET_ERR_INTERNAL',
  /** The control client got no answer from the endpoint. */
  UNREACHABLE: 'MESHLET_ERR_UNREACHABLE',
  /** A body in a media type the endpoint does not take (JSON sent as text/plain, say). */
  UNSUPPORTED_MEDIA_TYPE: 'MESHLET_ERR_UNSUPPORTED_MEDIA_TYPE',
  /** A quota of the control endpoint is full (watches, instances, store size); the message names it and the option that raises it. */
  QUOTA_EXCEEDED: 'MESHLET_ERR_QUOTA_EXCEEDED',
  // Events: CloudEvents codecs, brokers, triggers.
  /** Not a valid CloudEvent (a missing or malformed attribute, bad encoding); the message names the rule. */
  EVENT_INVALID: 'MESHLET_ERR_EVENT_INVALID',
  /** An event (or batch) larger than the receiver's limit. */
  EVENT_TOO_LARGE: 'MESHLET_ERR_EVENT_TOO_LARGE',
  /** The broker could not take the event durably (down, closing, or its disk failed). */
  BROKER_UNAVAILABLE: 'MESHLET_ERR_BROKER_UNAVAILABLE',
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface ErrorCodeInfo {
  /** The HTTP status an error with this code is answered with. */
  readonly http: number
  /** The gRPC status it is answered with. */
  readonly grpc: GrpcStatusCode
  /** A call that failed with it may be tried again (elsewhere, or later); the default of an error's `retryable`. */
  readonly retryable: boolean
  /** What to do about it, for the person on call. */
  readonly action: string
}

const G = GrpcStatus

/** One entry per code; the compiler and errors.test.ts refuse a code without one. */
export const errorRegistry: { readonly [C in ErrorCode]: ErrorCodeInfo } = {
  MESHLET_ERR_CONFIG_INVALID: { http: 422, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Fix the fields the message names and apply again; the previous configuration stays in force.' },
  MESHLET_ERR_NO_ENDPOINT: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'Check that instances of the service run and pass health checks (mesh.inspect(), meshlet inspect); calls succeed once one is available.' },
  MESHLET_ERR_DEADLINE: { http: 504, grpc: G.DEADLINE_EXCEEDED, retryable: false, action: 'Give the call more time, or find which hop is slow (the message says where the time went); a call past its deadline is not retried.' },
  MESHLET_ERR_BREAKER_OPEN: { http: 503, grpc: G.UNAVAILABLE, retryable: false, action: 'Look at why the destination fails (its endpoints in mesh.inspect()); calls resume when a probe succeeds after the reset timeout.' },
  MESHLET_ERR_BUDGET_EXHAUSTED: { http: 503, grpc: G.UNAVAILABLE, retryable: false, action: 'The destination fails broadly and retries would add load; fix the destination, or raise the retry budget if the failures are expected.' },
  MESHLET_ERR_BAD_HEADER: { http: 400, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Send the meshlet header the message names in its documented form, or leave it out.' },
  MESHLET_ERR_DRAINING: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'The instance is shutting down; retry on another instance (safe: the request was not processed).' },
  MESHLET_ERR_CLOSED: { http: 503, grpc: G.UNAVAILABLE, retryable: false, action: 'The mesh or client was closed; make calls before close(), or create a new mesh.' },
  MESHLET_ERR_DISCOVERY: { http: 503, grpc: G.UNAVAILABLE, retryable: false, action: 'Check the resolver\'s source (DNS name, control endpoint); the last good endpoints stay in use meanwhile.' },
  MESHLET_ERR_UPSTREAM: { http: 502, grpc: G.UNAVAILABLE, retryable: false, action: 'The endpoint failed (the cause says how); look at that endpoint, and mark the call idempotent if it is safe to retry.' },
  MESHLET_ERR_UNKNOWN_SERVICE: { http: 404, grpc: G.NOT_FOUND, retryable: false, action: 'Use a service the mesh knows (options.services or the control endpoint); the message lists them.' },
  MESHLET_ERR_OVERLOADED: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'The server shed the request before processing it; retry on another instance, or add capacity.' },
  MESHLET_ERR_RATE_LIMITED: { http: 429, grpc: G.UNAVAILABLE, retryable: true, action: 'The caller is over the server\'s rate limit; retry after Retry-After, or raise the limit.' },
  MESHLET_ERR_CANCELLED: { http: 499, grpc: G.CANCELLED, retryable: false, action: 'The caller gave up (its client disconnected or aborted); nothing to do unless callers give up too early.' },
  MESHLET_ERR_UNAVAILABLE: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'The service could not take the call just now; retry with backoff.' },
  MESHLET_ERR_UNKNOWN: { http: 500, grpc: G.UNKNOWN, retryable: false, action: 'The callee failed without saying why; its logs have the details.' },
  MESHLET_ERR_BAD_REQUEST: { http: 400, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Correct the request as the message says; sending it again unchanged fails the same way.' },
  MESHLET_ERR_UNAUTHENTICATED: { http: 401, grpc: G.UNAUTHENTICATED, retryable: false, action: 'Send a valid token (Authorization: Bearer, --token or MESHLET_TOKEN).' },
  MESHLET_ERR_FORBIDDEN: { http: 403, grpc: G.PERMISSION_DENIED, retryable: false, action: 'Use a credential allowed to make this call (the admin token for changes).' },
  MESHLET_ERR_NOT_FOUND: { http: 404, grpc: G.NOT_FOUND, retryable: false, action: 'Check the kind, namespace and name; list them to see what exists.' },
  MESHLET_ERR_UNKNOWN_KIND: { http: 404, grpc: G.NOT_FOUND, retryable: false, action: 'Use one of the kinds the message lists.' },
  MESHLET_ERR_METHOD_NOT_ALLOWED: { http: 405, grpc: G.UNIMPLEMENTED, retryable: false, action: 'Use one of the methods the message lists for this path.' },
  MESHLET_ERR_CONFLICT: { http: 409, grpc: G.ABORTED, retryable: false, action: 'Someone changed the resource meanwhile: fetch it again, reapply the change and retry.' },
  MESHLET_ERR_RESYNC: { http: 410, grpc: G.OUT_OF_RANGE, retryable: false, action: 'Watch again without since (or list) and continue from the resourceVersion returned.' },
  MESHLET_ERR_TOO_LARGE: { http: 413, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Send less in one request: split the change into several resources.' },
  MESHLET_ERR_LEASE_NOT_FOUND: { http: 404, grpc: G.NOT_FOUND, retryable: false, action: 'The lease expired or was deregistered: register the instance again.' },
  MESHLET_ERR_STORE_CORRUPT: { http: 500, grpc: G.INTERNAL, retryable: false, action: 'Restore the store file from a backup or repair it as the message says; the endpoint will not start on a corrupt store.' },
  MESHLET_ERR_STORE_FAILED: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'The control endpoint cannot write (shutting down, or its disk failed); retry once it is back, and check its disk.' },
  MESHLET_ERR_STORE_LOCKED: { http: 500, grpc: G.INTERNAL, retryable: false, action: 'Another control endpoint uses this data directory: stop it, or give this one another --data.' },
  MESHLET_ERR_INTERNAL: { http: 500, grpc: G.INTERNAL, retryable: false, action: 'A bug or an unexpected failure: the log of the process that answered has the details.' },
  MESHLET_ERR_UNREACHABLE: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'Check the control endpoint\'s address (--control, MESHLET_CONTROL) and that it runs; the data plane keeps its last-known-good config.' },
  MESHLET_ERR_UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Send the body with the Content-Type the message names (application/json for the control API).' },
  MESHLET_ERR_QUOTA_EXCEEDED: { http: 429, grpc: G.UNAVAILABLE, retryable: true, action: 'Free room under the quota the message names (remove instances or resources, close watches), or raise the option it names; registrations retry on their own.' },
  MESHLET_ERR_EVENT_INVALID: { http: 400, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Send a valid CloudEvent (the message names the attribute or rule that failed); resending it unchanged fails the same way.' },
  MESHLET_ERR_EVENT_TOO_LARGE: { http: 413, grpc: G.INVALID_ARGUMENT, retryable: false, action: 'Send a smaller event (the message gives the limit), or raise maxEventSize on the receiver and the broker.' },
  MESHLET_ERR_BROKER_UNAVAILABLE: { http: 503, grpc: G.UNAVAILABLE, retryable: true, action: 'Publish again later (the event was not stored), or give events() an outbox so publishing survives broker outages; check the broker\'s process and disk.' },
}

/** The canonical code of each HTTP status a code uses: status → code → status is the identity. */
const CODE_FOR_HTTP: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [400, ErrorCodes.BAD_REQUEST],
  [401, ErrorCodes.UNAUTHENTICATED],
  [403, ErrorCodes.FORBIDDEN],
  [404, ErrorCodes.NOT_FOUND],
  [405, ErrorCodes.METHOD_NOT_ALLOWED],
  [409, ErrorCodes.CONFLICT],
  [410, ErrorCodes.RESYNC],
  [413, ErrorCodes.TOO_LARGE],
  [415, ErrorCodes.UNSUPPORTED_MEDIA_TYPE],
  [422, ErrorCodes.CONFIG_INVALID],
  [429, ErrorCodes.RATE_LIMITED],
  [499, ErrorCodes.CANCELLED],
  [500, ErrorCodes.INTERNAL],
  [502, ErrorCodes.UPSTREAM],
  [503, ErrorCodes.UNAVAILABLE],
  [504, ErrorCodes.DEADLINE],
])

/** The canonical code of each gRPC status a code uses, and the nearest code for the four no code uses. */
const CODE_FOR_GRPC: readonly ErrorCode[] = [
  /* OK */ ErrorCodes.UNKNOWN, // not an error; never returned (codeForGrpcStatus answers undefined)
  ErrorCodes.CANCELLED,
  ErrorCodes.UNKNOWN,
  ErrorCodes.BAD_REQUEST,
  ErrorCodes.DEADLINE,
  ErrorCodes.NOT_FOUND,
  /* ALREADY_EXISTS */ ErrorCodes.CONFLICT,
  ErrorCodes.FORBIDDEN,
  /* RESOURCE_EXHAUSTED */ ErrorCodes.RATE_LIMITED,
  /* FAILED_PRECONDITION */ ErrorCodes.BAD_REQUEST,
  ErrorCodes.CONFLICT,
  ErrorCodes.RESYNC,
  ErrorCodes.METHOD_NOT_ALLOWED,
  ErrorCodes.INTERNAL,
  ErrorCodes.UNAVAILABLE,
  /* DATA_LOSS */ ErrorCodes.INTERNAL,
  ErrorCodes.UNAUTHENTICATED,
]

/** The registry entry of a code; undefined for a string that is not a meshlet code. */
export function errorInfo(code: string): ErrorCodeInfo | undefined {
  return Object.hasOwn(errorRegistry, code) ? errorRegistry[code as ErrorCode] : undefined
}

/** The HTTP status an error with this code is answered with. */
export function httpStatusOf(code: ErrorCode): number {
  return errorRegistry[code].http
}

/** The gRPC status (grpc-js's `status` number) an error with this code is answered with. */
export function grpcStatusOf(code: ErrorCode): GrpcStatusCode {
  return errorRegistry[code].grpc
}

/**
 * The meshlet code for a failed HTTP status; undefined below 400 (not a failure). Statuses without
 * a code of their own: other 4xx → BAD_REQUEST, other 5xx and anything else → UNKNOWN.
 */
export function codeForHttpStatus(status: number): ErrorCode | undefined {
  if (status < 400) return undefined
  return CODE_FOR_HTTP.get(status) ?? (status < 500 ? ErrorCodes.BAD_REQUEST : ErrorCodes.UNKNOWN)
}

/** The meshlet code for a gRPC status; undefined for OK. A number outside 1–16 → UNKNOWN. */
export function codeForGrpcStatus(status: number): ErrorCode | undefined {
  if (status === GrpcStatus.OK) return undefined
  return (Number.isInteger(status) ? CODE_FOR_GRPC[status] : undefined) ?? ErrorCodes.UNKNOWN
}

/** The gRPC status for an HTTP status, through its meshlet code (module docblock: where this differs from grpc/grpc's table, and why). */
export function grpcStatusForHttp(status: number): GrpcStatusCode {
  if (status >= 200 && status < 300) return GrpcStatus.OK
  const code = codeForHttpStatus(status)
  return code === undefined ? GrpcStatus.UNKNOWN : errorRegistry[code].grpc
}

/** The HTTP status for a gRPC status, through its meshlet code; 200 for OK. */
export function httpStatusForGrpc(status: number): number {
  const code = codeForGrpcStatus(status)
  return code === undefined ? 200 : errorRegistry[code].http
}

export interface MeshletErrorOptions {
  /** The call may be tried again (on another endpoint). Default: the code's `retryable` in the registry. */
  retryable?: boolean
  /** The server refused the call before processing it: safe to retry even when not idempotent. */
  rejected?: boolean
  cause?: unknown
  /** Extra facts for the person on call: endpoint, attempt, breaker state, budget, deadline left. */
  details?: Record<string, unknown>
}

export class MeshletError extends Error {
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly rejected: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: MeshletErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MeshletError'
    this.code = code
    this.retryable = options.retryable ?? errorRegistry[code]?.retryable ?? false
    this.rejected = options.rejected ?? false
    this.details = options.details
  }

  get [BRAND](): true {
    return true
  }

  // Across duplicate installs the brand decides; subclasses keep ordinary prototype checks.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return this === MeshletError ? isMeshletError(value) : Function.prototype[Symbol.hasInstance].call(this, value)
  }
}

/** True for a MeshletError from any copy of @meshlet/core (duplicate installs share the brand). */
export function isMeshletError(value: unknown, code?: ErrorCode): value is MeshletError {
  if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true) return false
  return code === undefined || (value as MeshletError).code === code
}

/** One invalid option or resource field. */
export interface ConfigIssue {
  /** Dotted path of the field, e.g. `services.payments.retries.attempts`. */
  path: string
  message: string
}

export class ConfigError extends MeshletError {
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[], what = 'mesh options') {
    const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n')
    super(ErrorCodes.CONFIG_INVALID, `Invalid ${what} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines}`, {
      details: { issues },
    })
    this.name = 'ConfigError'
    this.issues = issues
  }
}
