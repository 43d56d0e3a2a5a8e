/**
 * Role `deadline`. Reads `meshlet-deadline` (absolute ms since the epoch) and the transport's own
 * deadline (`transportDeadline`: gRPC's `grpc-timeout`), and the wall clock. Sets `call.deadline`
 * to the earlier of the two (Infinity when neither), so queueing, the app and its outbound calls
 * share one deadline. Guarantees: a malformed header is refused 400 BAD_HEADER and a deadline
 * already past 504 DEADLINE, neither marked `rejected` and neither reaching the app.
 */
import type { Refusal } from '../admission/refusal.js'
import type { RejectionCounter } from '../admission/rejection-counter.js'
import type { Clock } from '../admission/token-bucket.js'
import { DEADLINE_HEADER, parseDeadlineHeader } from '../deadline/call-scope.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import type { ServerRole } from './server-role.js'

/** The call's deadline from its header and the transport's, or the refusal when it is malformed or past. */
export function inboundDeadline(header: string | string[] | undefined, transportDeadline: number, now: number, service: string): number | Refusal {
  const parsed = parseDeadlineHeader(header, now)
  if (typeof parsed !== 'number') return { ok: false, status: 400, error: parsed, rejected: false, reason: 'bad_header' }
  const deadline = parsed < transportDeadline ? parsed : transportDeadline
  if (deadline > now) return deadline
  const error = new MeshletError(ErrorCodes.DEADLINE, `The caller's deadline passed ${now - deadline}ms before "${service}" received the request; it was not processed.`)
  return { ok: false, status: 504, error, rejected: false, reason: 'deadline' }
}

/** `now`: the wall clock (deadlines are epoch times); tests inject one. */
export function deadlineRole(service: string, rejections: RejectionCounter, now: Clock = Date.now): ServerRole {
  return {
    name: 'deadline',
    arrive(call) {
      const d = inboundDeadline(call.header(DEADLINE_HEADER), call.transportDeadline, now(), service)
      if (typeof d === 'number') {
        call.deadline = d
        return undefined
      }
      rejections.count(d.reason!)
      return d
    },
  }
}
