/**
 * Role `drain`, outermost. Reads whether the server still accepts calls (InboundGate's state, set
 * by the mesh's shutdown). Changes nothing on the call. Guarantees: once `accepting` is false, no
 * call reaches a later role or the app; each is refused 503 DRAINING, marked not processed
 * (`rejected`), so the client retries it on another instance, even a POST.
 */
import type { Refusal } from '../admission/refusal.js'
import type { RejectionCounter } from '../admission/rejection-counter.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import type { ServerRole } from './server-role.js'

export interface DrainState {
  /** False once the mesh stopped accepting calls. */
  readonly accepting: boolean
}

/** The refusal for a call that arrives while the service drains. */
export function drainingRefusal(service: string): Refusal {
  const error = new MeshletError(ErrorCodes.DRAINING, `Service "${service}" is shutting down and takes no new requests; retry on another instance.`, { rejected: true, retryable: true })
  return { ok: false, status: 503, error, rejected: true, reason: 'draining' }
}

export function drainRole(state: DrainState, rejections: RejectionCounter, service: string): ServerRole {
  return {
    name: 'drain',
    arrive() {
      if (state.accepting) return undefined
      rejections.count('draining')
      return drainingRefusal(service)
    },
  }
}
