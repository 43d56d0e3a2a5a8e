/**
 * The inbound request's scope, carried by AsyncLocalStorage: outbound calls made while a request is
 * handled inherit its deadline and cancellation with no code in the app (a sidecar cannot do this).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { ErrorCodes, MeshletError } from '../errors.js'

export interface CallScope {
  /** Absolute deadline, ms since the epoch; Infinity when the caller set none. */
  readonly deadline: number
  /** Aborted when the inbound request is cancelled (the client went away). */
  readonly signal: AbortSignal | undefined
  /** The inbound call is itself a retry of its caller's: calls made for it are not retried (see resilience/retry-marker.ts). */
  readonly retried?: boolean
}

export const callScope = new AsyncLocalStorage<CallScope>()

/** The header that carries the absolute deadline (ms since the epoch) between hops. */
export const DEADLINE_HEADER = 'meshlet-deadline'
/** Longest deadline accepted from a peer; later ones are clamped (a hostile peer cannot pin work forever). */
export const MAX_INBOUND_DEADLINE_MS = 24 * 3_600_000
const DIGITS = /^\d{1,15}$/

/**
 * Parses a `meshlet-deadline` header. Returns Infinity when absent, the deadline (clamped to one day
 * ahead) when valid, and a MESHLET_ERR_BAD_HEADER error when it is malformed.
 */
export function parseDeadlineHeader(value: string | string[] | undefined, now = Date.now()): number | MeshletError {
  if (value === undefined) return Infinity
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || !DIGITS.test(text)) {
    const shown = typeof text === 'string' && text.length > 40 ? `${text.slice(0, 40)}…` : String(text)
    return new MeshletError(ErrorCodes.BAD_HEADER, `Header ${DEADLINE_HEADER} must be an absolute time in milliseconds since the epoch (digits only), got "${shown}".`)
  }
  return Math.min(Number(text), now + MAX_INBOUND_DEADLINE_MS)
}

/** The call's own deadline passed: before it was sent (`sent` false), or while waiting for its answer. A per-try timeout is `attemptExpired`. */
export function deadlineExceeded(service: string, deadline: number, attempt: number, sent: boolean): MeshletError {
  const late = Math.max(0, Date.now() - deadline)
  return new MeshletError(
    ErrorCodes.DEADLINE,
    sent
      ? `Call to "${service}" ran past its deadline on attempt ${attempt} (${late}ms late); raise the service's timeout or the caller's deadline if the work needs longer.`
      : `Call to "${service}" was not sent: its deadline passed ${late}ms ago (attempt ${attempt}). The time was used up before this hop; check the upstream timeout.`,
    { retryable: false, details: { service, deadline, attempt, sent, perTry: false } },
  )
}
