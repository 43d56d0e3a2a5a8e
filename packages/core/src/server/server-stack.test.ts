/**
 * The server stack as every transport gets it (serverStack over a real gate), driven through a
 * scripted fake transport: what reaches the app, what is refused and how, what is measured, and the
 * order roles run and end in.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { AdmissionController } from '../admission/admission-controller.js'
import type { Refusal } from '../admission/refusal.js'
import { validateMeshOptions, type MeshOptionsInput } from '../config/mesh-options.js'
import { DEADLINE_HEADER } from '../deadline/call-scope.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { CallPhase, type InboundCall } from './inbound-call.js'
import { InboundGate } from './inbound-gate.js'
import { DEFER, SERVER_ROLES, type CallResumer, type ServerRole, type ServerRoleName } from './server-role.js'
import { serverStack, ServerStack } from './server-stack.js'

const NOW = 1_700_000_000_000
let gates: InboundGate[] = []

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
})
afterEach(() => {
  for (const g of gates) g.close()
  gates = []
  vi.useRealTimers()
})

function gateWith(admission?: MeshOptionsInput['admission']): InboundGate {
  const metrics = new MeshMetrics()
  const o = validateMeshOptions({ service: 'orders', admission })
  const gate = new InboundGate('orders', metrics, o.admission === undefined ? undefined : new AdmissionController('orders', o.admission, metrics))
  gates.push(gate)
  return gate
}

describe('serverStack roles', () => {
  it('lists its roles in stack order, admission only when configured', () => {
    expect(serverStack(gateWith()).roles).toEqual(['drain', 'deadline', 'trace', 'telemetry', 'load-report'])
    expect(serverStack(gateWith({ concurrency: { limit: 1 } })).roles).toEqual(['drain', 'deadline', 'trace', 'admission', 'telemetry', 'load-report'])
  })

  it('keeps named places for identity and authz between drain and deadline', () => {
    expect(SERVER_ROLES).toEqual(['drain', 'identity', 'authz', 'deadline', 'trace', 'admission', 'telemetry', 'load-report'])
  })

  it('is built once per gate', () => {
    const gate = gateWith()
    expect(serverStack(gate)).toBe(serverStack(gate))
  })

  it.each([
    [['deadline', 'drain']],
    [['drain', 'drain']],
  ] as ServerRoleName[][][])('refuses roles out of order or repeated: %j', (names) => {
    expect(() => new ServerStack(names.map((name) => ({ name, arrive: () => undefined })))).toThrow(/out of order or repeated/)
  })
})

describe('a call through the stack', () => {
  it('runs the app once in its own scope, reports load, counts it in flight until it ends, records it once', () => {
    const gate = gateWith()
    const call = new FakeCall({ headers: { [DEADLINE_HEADER]: String(NOW + 500) } })
    serverStack(gate).accept(call)
    expect(call.appRuns).toEqual([call])
    expect(call.deadline).toBe(NOW + 500)
    expect(call.loads).toEqual([gate.loadReport()])
    expect(gate.inflight).toBe(1)
    serverStack(gate).end(call, true)
    serverStack(gate).end(call, true)
    expect(gate.inflight).toBe(0)
    expect(call.durations).toEqual([{ seconds: expect.any(Number), complete: true }])
    expect(call.refusals).toEqual([])
    expect(call.signal.aborted).toBe(false)
  })

  it('takes the earlier of meshlet-deadline and the transport deadline', () => {
    const call = new FakeCall({ headers: { [DEADLINE_HEADER]: String(NOW + 5000) }, transportDeadline: NOW + 900 })
    serverStack(gateWith()).accept(call)
    expect(call.deadline).toBe(NOW + 900)
  })

  it('aborts the scope with MESHLET_ERR_CANCELLED and records an incomplete call when the client goes away', () => {
    const gate = gateWith()
    const call = new FakeCall()
    serverStack(gate).accept(call)
    const signal = call.signal
    serverStack(gate).end(call, false)
    expect(signal.aborted).toBe(true)
    expect(isMeshletError(signal.reason, ErrorCodes.CANCELLED)).toBe(true)
    expect(call.durations).toEqual([{ seconds: expect.any(Number), complete: false }])
    expect(gate.inflight).toBe(0)
  })

  it('never runs a call whose client left before it arrived', () => {
    const gate = gateWith()
    const call = new FakeCall()
    serverStack(gate).end(call, false)
    serverStack(gate).accept(call)
    expect(call.appRuns).toEqual([])
    expect(call.refusals).toEqual([])
    expect(gate.inflight).toBe(0)
  })

  it.each([
    ['malformed', 'soon', 400, ErrorCodes.BAD_HEADER, 'bad_header'],
    ['already past', String(NOW - 1), 504, ErrorCodes.DEADLINE, 'deadline'],
  ])('refuses a %s deadline (%s) with %d, not marked rejected, before the app', (_what, header, status, code, reason) => {
    const gate = gateWith()
    const call = new FakeCall({ headers: { [DEADLINE_HEADER]: header } })
    serverStack(gate).accept(call)
    expect(call.refusals).toHaveLength(1)
    expect(call.refusals[0]).toMatchObject({ status, rejected: false, reason })
    expect(isMeshletError(call.refusals[0]!.error, code)).toBe(true)
    expect(call.appRuns).toEqual([])
    expect(call.loads).toEqual([])
    expect(gate.inflight).toBe(0)
    serverStack(gate).end(call, true)
    expect(call.durations).toEqual([])
    expect(gate.admissionSnapshot().rejected).toEqual({ [reason]: 1 })
  })

  it('refuses every call 503 DRAINING, rejected, once the gate stops accepting, even one with a bad header', () => {
    const gate = gateWith()
    gate.stopAccepting()
    for (const headers of [{}, { [DEADLINE_HEADER]: 'garbage' }] as Record<string, string>[]) {
      const call = new FakeCall({ headers })
      serverStack(gate).accept(call)
      expect(call.refusals[0]).toMatchObject({ status: 503, rejected: true, reason: 'draining', error: { code: ErrorCodes.DRAINING } })
      expect(call.appRuns).toEqual([])
    }
    expect(gate.admissionSnapshot().rejected).toEqual({ draining: 2 })
  })
})

describe('a call through the stack with admission', () => {
  /** A limit of one: the first call runs, the second waits in the queue. */
  function oneRunningOneWaiting(queue = 1) {
    const gate = gateWith({ concurrency: { limit: 1, queue } })
    const stack = serverStack(gate)
    const first = new FakeCall()
    const second = new FakeCall()
    stack.accept(first)
    stack.accept(second)
    return { gate, stack, first, second }
  }

  it('queues a call over the limit and runs it when the permit frees, in its scope', async () => {
    const { gate, stack, first, second } = oneRunningOneWaiting()
    expect(second.appRuns).toEqual([])
    expect(gate.admissionSnapshot()).toMatchObject({ inflight: 1, queued: 1 })
    expect(gate.inflight).toBe(1)
    stack.end(first, true)
    expect(second.appRuns).toEqual([second])
    expect(gate.admissionSnapshot()).toMatchObject({ inflight: 1, queued: 0 })
    stack.end(second, true)
    expect(gate.admissionSnapshot()).toMatchObject({ inflight: 0, queued: 0 })
    await vi.advanceTimersByTimeAsync(0)
  })

  it('gives up the queue place of a call whose client left while it waited; it never runs', () => {
    const { gate, stack, first, second: gone } = oneRunningOneWaiting()
    stack.end(gone, false)
    expect(gate.admissionSnapshot().queued).toBe(0)
    // The freed place takes the next call, and the permit goes to it, not to the one that left.
    const next = new FakeCall()
    stack.accept(next)
    stack.end(first, true)
    expect(gone.appRuns).toEqual([])
    expect(gone.durations).toEqual([])
    expect(next.appRuns).toEqual([next])
    expect(gate.admissionSnapshot().rejected).toEqual({})
  })

  it('refuses waiting calls 503 DRAINING when the gate stops accepting', () => {
    const { gate, first: running, second: waiting } = oneRunningOneWaiting(2)
    gate.stopAccepting()
    expect(waiting.refusals[0]).toMatchObject({ status: 503, rejected: true, reason: 'draining' })
    expect(waiting.appRuns).toEqual([])
    expect(running.refusals).toEqual([])
  })

  it('refuses beyond the queue with 503 OVERLOADED, rejected', () => {
    const { second: refused } = oneRunningOneWaiting(0)
    expect(refused.refusals[0]).toMatchObject({ status: 503, rejected: true, reason: 'concurrency', error: { code: ErrorCodes.OVERLOADED } })
  })
})

describe('ServerStack order', () => {
  /** A role that logs its hooks; `defer` makes it wait for the test to resume or refuse. */
  function logging(name: ServerRoleName, log: string[], behaviour: { refuse?: Refusal; defer?: (stack: CallResumer) => void } = {}): ServerRole {
    return {
      name,
      arrive(_call, stack) {
        log.push(`arrive ${name}`)
        if (behaviour.refuse) return behaviour.refuse
        if (behaviour.defer) {
          behaviour.defer(stack)
          return DEFER
        }
        return undefined
      },
      end(_call, complete) {
        log.push(`end ${name} ${complete}`)
      },
      abandon() {
        log.push(`abandon ${name}`)
      },
    }
  }
  const refusal = { ok: false, status: 403, rejected: false, error: new Error('no') } as unknown as Refusal

  it('runs arrive outermost first and end innermost first', () => {
    const log: string[] = []
    const stack = new ServerStack([logging('drain', log), logging('deadline', log), logging('telemetry', log)])
    const call = new FakeCall()
    stack.accept(call)
    stack.end(call, true)
    expect(log).toEqual(['arrive drain', 'arrive deadline', 'arrive telemetry', 'end telemetry true', 'end deadline true', 'end drain true'])
  })

  it('a refusal stops the call: later roles never see it, earlier ones end at once', () => {
    const log: string[] = []
    const stack = new ServerStack([logging('drain', log), logging('authz', log, { refuse: refusal }), logging('telemetry', log)])
    const call = new FakeCall()
    stack.accept(call)
    expect(log).toEqual(['arrive drain', 'arrive authz', 'end drain false'])
    expect(call.refusals).toEqual([refusal])
    expect(call.phase).toBe(CallPhase.Refused)
    stack.end(call, true)
    expect(log).toHaveLength(3)
  })

  it('a deferring role resumes the call later, or has it abandoned when the client leaves first', () => {
    const log: string[] = []
    let resumer: CallResumer | undefined
    const stack = new ServerStack([logging('drain', log), logging('admission', log, { defer: (s) => (resumer = s) }), logging('telemetry', log)])
    const resumed = new FakeCall()
    stack.accept(resumed)
    expect(resumed.appRuns).toEqual([])
    resumer!.resume(resumed)
    expect(resumed.appRuns).toEqual([resumed])
    expect(log.splice(0)).toEqual(['arrive drain', 'arrive admission', 'arrive telemetry'])

    const left: InboundCall = new FakeCall()
    stack.accept(left)
    stack.end(left, false)
    resumer!.resume(left)
    expect(log).toEqual(['arrive drain', 'arrive admission', 'abandon admission', 'end drain false'])
    expect((left as FakeCall).appRuns).toEqual([])
  })
})
