/**
 * The one registry of meshlet errors. Every error has a stable `code`, flags that tell retry and
 * breaker logic what happened (Finagle-style flags instead of a class tree), and a message that
 * says what to do about it.
 */

const BRAND = Symbol.for('meshlet.error')

export const ErrorCodes = {
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
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface MeshletErrorOptions {
  /** The call may be tried again (on another endpoint). */
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
    this.retryable = options.retryable ?? false
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
