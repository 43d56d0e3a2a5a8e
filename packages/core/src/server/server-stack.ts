/**
 * The server stack: one list of named roles (SERVER_ROLES order) that every inbound call passes
 * through before the app, the same for node:http, Express, Fastify and gRPC. The stack keeps no
 * per-call closures: where a call is lives on the call (`phase`, `passed`), the roles are shared.
 */
import type { Refusal } from '../admission/refusal.js'
import { admissionRole } from './admission-role.js'
import { deadlineRole } from './deadline-role.js'
import { drainRole } from './drain-role.js'
import { CallPhase, type InboundCall } from './inbound-call.js'
import type { InboundGate } from './inbound-gate.js'
import { loadReportRole } from './load-report-role.js'
import { DEFER, SERVER_ROLES, type CallResumer, type ServerRole, type ServerRoleName } from './server-role.js'
import { telemetryRole } from './telemetry-role.js'
import { traceRole } from './trace-role.js'

export class ServerStack implements CallResumer {
  readonly #roles: readonly ServerRole[]

  /** `roles` in SERVER_ROLES order, each name at most once (a role in the wrong place is a bug: it throws). */
  constructor(roles: readonly ServerRole[]) {
    let last = -1
    for (const r of roles) {
      const at = SERVER_ROLES.indexOf(r.name)
      if (at <= last) throw new TypeError(`Server role "${r.name}" is out of order or repeated; roles go in this order: ${SERVER_ROLES.join(' → ')}.`)
      last = at
    }
    this.#roles = roles
  }

  /** The roles this stack runs, outermost first. */
  get roles(): ServerRoleName[] {
    return this.#roles.map((r) => r.name)
  }

  /** A new call arrived: it runs through the roles to the app (`runApp`), or gets a refusal. */
  accept(call: InboundCall): void {
    if (call.phase !== CallPhase.New) return
    call.phase = CallPhase.Arriving
    call.passed = 0
    this.#advance(call)
  }

  resume(call: InboundCall): void {
    if (call.phase !== CallPhase.Arriving) return
    call.passed++
    this.#advance(call)
  }

  refuse(call: InboundCall, refusal: Refusal): void {
    if (call.phase !== CallPhase.Arriving) return
    call.phase = CallPhase.Refused
    this.#endRoles(call, false)
    call.writeRefusal(refusal)
  }

  /**
   * The transport says the call is over: its response went out (`complete`), or the client went
   * away first. Safe to call more than once and at any phase; a call that never arrived stays out.
   */
  end(call: InboundCall, complete: boolean): void {
    const phase = call.phase
    call.phase = CallPhase.Ended
    if (phase === CallPhase.Running) {
      this.#endRoles(call, complete)
      if (!complete) call.cancel()
    } else if (phase === CallPhase.Arriving) {
      this.#roles[call.passed]!.abandon?.(call)
      this.#endRoles(call, false)
      call.cancel()
    }
  }

  #advance(call: InboundCall): void {
    const roles = this.#roles
    for (let i = call.passed; i < roles.length; i++) {
      call.passed = i
      const verdict = roles[i]!.arrive(call, this)
      if (verdict === DEFER) return
      if (verdict !== undefined) return this.refuse(call, verdict)
    }
    call.passed = roles.length
    call.phase = CallPhase.Running
    call.runApp()
  }

  /** Ends the roles the call passed, innermost first. */
  #endRoles(call: InboundCall, complete: boolean): void {
    const roles = this.#roles
    for (let i = call.passed - 1; i >= 0; i--) roles[i]!.end?.(call, complete)
    call.passed = 0
  }
}

const stacks = new WeakMap<InboundGate, ServerStack>()

/**
 * The mesh's server stack over its gate (`mesh.inbound`), built once: drain → deadline → trace →
 * admission (when configured) → telemetry → load-report. Adapters take it when they are created.
 */
export function serverStack(gate: InboundGate): ServerStack {
  let stack = stacks.get(gate)
  if (stack === undefined) {
    const roles: ServerRole[] = [drainRole(gate, gate.rejections, gate.service), deadlineRole(gate.service, gate.rejections), traceRole()]
    if (gate.admission !== undefined) roles.push(admissionRole(gate.admission))
    roles.push(telemetryRole(gate), loadReportRole(gate))
    stacks.set(gate, (stack = new ServerStack(roles)))
  }
  return stack
}
