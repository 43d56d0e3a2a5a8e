/**
 * The one inbound scope: a call as the server stack sees it, whatever the transport. It is the
 * CallScope the app's outbound calls inherit (deadline, cancellation) and carries the state each
 * role keeps for the call. A transport adapter subclasses it and supplies only its own side: how to
 * read a header, how to write a refusal and the load report, how to run the app, and what to record
 * for metrics; it tells the stack when the call ended. One object per call: a success allocates
 * nothing else in the stack (a cancellation signal is made only when an outbound call asks).
 */
import type { Context } from '@opentelemetry/api'
import type { CallerInfo } from '../admission/admission-options.js'
import type { QueueEntry } from '../admission/concurrency-limiter.js'
import type { Refusal } from '../admission/refusal.js'
import { callScope, type CallScope } from '../deadline/call-scope.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import { ATTEMPT_HEADER, GRPC_PREVIOUS_ATTEMPTS, isRetriedCall } from '../resilience/retry-marker.js'
import { withTraceContext } from '../telemetry/otel.js'

/** Where a call is in the stack; written by ServerStack only. */
export const CallPhase = { New: 0, Arriving: 1, Running: 2, Refused: 3, Ended: 4 } as const
export type CallPhase = (typeof CallPhase)[keyof typeof CallPhase]

export abstract class InboundCall implements CallScope {
  /** Absolute deadline, ms since the epoch (the `deadline` role sets it); Infinity when none. */
  deadline = Infinity
  /** The transport's own deadline (gRPC's `grpc-timeout`), ms since the epoch; the deadline role takes the earlier. */
  transportDeadline = Infinity
  /** The extracted trace context (the `trace` role); undefined without OpenTelemetry. */
  trace: Context | undefined = undefined
  /** `admission`: holds a concurrency permit since `admittedAt` (its clock), or waits in `queued`. */
  permit = false
  admittedAt = 0
  queued: QueueEntry | undefined = undefined
  /** `telemetry`: when the call started running (its clock). */
  startedAt = 0
  /** ServerStack's bookkeeping: the phase, and how many roles the call passed (or the deferring one's index). */
  phase: CallPhase = CallPhase.New
  passed = 0
  #controller: AbortController | undefined
  #cancelled = false

  /** A request header or metadata value (lower-case name); text values only. */
  abstract header(name: string): string | string[] | undefined
  /** Every header or metadata name (for trace propagators that ask). */
  abstract headerNames(): string[]
  /** What admission's priority paths match: the request path, or gRPC's `/pkg.Service/Method`. */
  abstract get path(): string
  /** The caller as the per-caller rate limit sees it; asked only when that limit is configured. */
  abstract caller(): CallerInfo
  /** Answers the call with a refusal; the app never sees it. */
  abstract writeRefusal(refusal: Refusal): void
  /** Sends the load report (`meshlet-load`) with the response. */
  abstract writeLoad(report: string): void
  /** Hands the call to the app; `runInScope` runs app code inside this call's scope. */
  abstract runApp(): void
  /** Records the call's duration; `complete` false: the client went away before the response was sent. */
  abstract recordDuration(seconds: number, complete: boolean): void

  /** The caller marked this call as a retry; read when an outbound call is made for it. */
  get retried(): boolean {
    return isRetriedCall(this.header(ATTEMPT_HEADER), this.header(GRPC_PREVIOUS_ATTEMPTS))
  }

  /** Aborted when the call ends before its response was sent (the client went away); made on first use. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#cancelled) this.#abort()
    }
    return this.#controller.signal
  }

  /** Marks the call cancelled: outbound calls made for it are aborted. The stack calls it when a call ends incomplete. */
  cancel(): void {
    if (this.#cancelled) return
    this.#cancelled = true
    if (this.#controller !== undefined) this.#abort()
  }

  /** Runs `fn(this)` with this call as the call scope and its trace context active. */
  runInScope(fn: (call: this) => void): void {
    callScope.run(this, inTrace, this, fn)
  }

  #abort(): void {
    this.#controller!.abort(new MeshletError(ErrorCodes.CANCELLED, 'The inbound call was cancelled by its client (or ran out of time); outbound calls made for it are cancelled too.'))
  }
}

function inTrace<C extends InboundCall>(call: C, fn: (call: C) => void): void {
  if (call.trace === undefined) fn(call)
  else withTraceContext(call.trace, () => fn(call))
}
