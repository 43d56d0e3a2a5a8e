/**
 * Role `telemetry`, after admission: what it sees ran (refusals are counted in
 * `meshlet.admission.rejected`, not here; a queued call's wait in `meshlet.admission.queue.duration`).
 * Reads its clock (ms, monotonic). Sets `call.startedAt`. Guarantees: from here until the call ends
 * it counts as in flight (the count drain waits for and the load report shows), and when it ends its
 * duration is recorded exactly once through the transport (`recordDuration`).
 */
import type { Clock } from '../admission/token-bucket.js'
import type { CallScope } from '../deadline/call-scope.js'
import type { ServerRole } from './server-role.js'

export interface InflightCounter {
  enter(scope: CallScope): void
  leave(scope: CallScope): void
}

export function telemetryRole(inflight: InflightCounter, clock: Clock = () => performance.now()): ServerRole {
  return {
    name: 'telemetry',
    arrive(call) {
      inflight.enter(call)
      call.startedAt = clock()
      return undefined
    },
    end(call, complete) {
      inflight.leave(call)
      call.recordDuration((clock() - call.startedAt) / 1000, complete)
    },
  }
}
