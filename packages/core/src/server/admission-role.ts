/**
 * Role `admission`, present when the mesh has an `admission` option. Reads the call's path, its
 * deadline (set by `deadline`: a queued call leaves the queue when it passes) and, for a per-caller
 * rate limit only, its caller. Sets `call.permit`/`admittedAt` while the call holds a concurrency
 * permit and `call.queued` while it waits. Guarantees: shedding, rate limits and the concurrency
 * limit refuse before the app runs (503/429 marked `rejected`, 504 when the deadline passed in the
 * queue); a call holding a permit returns it exactly once when it ends, with its run time (from the
 * grant to the end, never the time it waited) as the adaptive limit's latency sample; a call whose
 * client left before it ran returns its permit with no sample and gives up its queue place.
 */
import type { AdmissionController, AdmissionWaiter } from '../admission/admission-controller.js'
import type { Refusal } from '../admission/refusal.js'
import type { Clock } from '../admission/token-bucket.js'
import { CallPhase, type InboundCall } from './inbound-call.js'
import { DEFER, type CallResumer, type ServerRole } from './server-role.js'

/** A queued call's answer from the controller, later; allocated only for a call that waits. */
class QueuedCall implements AdmissionWaiter {
  readonly #call: InboundCall
  readonly #stack: CallResumer
  readonly #controller: AdmissionController
  readonly #clock: Clock

  constructor(call: InboundCall, stack: CallResumer, controller: AdmissionController, clock: Clock) {
    this.#call = call
    this.#stack = stack
    this.#controller = controller
    this.#clock = clock
  }

  start(): void {
    const call = this.#call
    call.queued = undefined
    // The client left while the call waited: the permit goes straight back, and it never ran, so no sample.
    if (call.phase !== CallPhase.Arriving) return this.#controller.release()
    call.permit = true
    call.admittedAt = this.#clock()
    this.#stack.resume(call)
  }

  refuse(refusal: Refusal): void {
    this.#call.queued = undefined
    this.#stack.refuse(this.#call, refusal)
  }
}

/** `clock` must be the controller's (its adaptive windows and the run times share it); tests inject one there. */
export function admissionRole(controller: AdmissionController, clock: Clock = controller.clock): ServerRole {
  return {
    name: 'admission',
    arrive(call, stack) {
      const d = controller.decide(call.path, controller.wantsCaller ? call.caller() : undefined)
      if (d === 'pass') return undefined
      if (d === 'permit') {
        call.permit = true
        call.admittedAt = clock()
        return undefined
      }
      if (d !== 'wait') return d
      const entry = controller.enqueue(call.deadline, new QueuedCall(call, stack, controller, clock))
      if ('ok' in entry) return entry
      call.queued = entry
      return DEFER
    },
    end(call) {
      if (!call.permit) return
      call.permit = false
      controller.release(clock() - call.admittedAt)
    },
    abandon(call) {
      const entry = call.queued
      call.queued = undefined
      if (entry !== undefined) controller.cancel(entry)
    },
  }
}
