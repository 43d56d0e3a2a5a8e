/**
 * The server interceptor: drain → deadline and trace extraction → admission → telemetry → app. A
 * call is refused before the app sees it when the mesh is draining or admission control says no
 * (UNAVAILABLE with `meshlet-rejected: 1`, and `grpc-retry-pushback-ms` for a rate limit, so
 * clients retry it elsewhere, whatever the method), when `meshlet-deadline` is malformed
 * (INVALID_ARGUMENT) or already past (DEADLINE_EXCEEDED). Admitted calls run the handler in a call
 * scope (the earlier of `meshlet-deadline` and `grpc-timeout`, and the call's cancellation), so
 * outbound HTTP and gRPC calls made for it inherit both; the load report goes in trailing metadata.
 */
import { callScope, DEADLINE_HEADER, ErrorCodes, extractTraceContext, LOAD_HEADER, MeshletError, REJECTED_HEADER, withTraceContext, type AdmissionController, type CallScope, type Mesh, type QueueEntry, type Refusal } from '@meshlet/core'
import { Metadata, ServerInterceptingCall, status as Status, type ServerInterceptor } from '@grpc/grpc-js'
import { rpcMetrics } from './grpc-metrics.js'

/** One admitted call's scope; its cancellation signal is made only when an outbound call asks. */
export class GrpcCallScope implements CallScope {
  readonly deadline: number
  #controller: AbortController | undefined
  #cancelled = false

  constructor(deadline: number) {
    this.deadline = deadline
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#cancelled) this.#abort()
    }
    return this.#controller.signal
  }

  cancel(): void {
    this.#cancelled = true
    if (this.#controller !== undefined) this.#abort()
  }

  #abort(): void {
    this.#controller!.abort(new MeshletError(ErrorCodes.UPSTREAM, 'The inbound gRPC call was cancelled by its client (or ran out of time); outbound calls made for it are cancelled too.'))
  }
}

/** The calls each mesh is serving, so a drain can wait for the latest in-flight deadline. */
const inflight = new WeakMap<Mesh, Set<GrpcCallScope>>()
export function inflightScopes(mesh: Mesh): Set<GrpcCallScope> {
  let s = inflight.get(mesh)
  if (s === undefined) inflight.set(mesh, (s = new Set()))
  return s
}

const STATUS_FOR_HTTP: Record<number, Status> = { 400: Status.INVALID_ARGUMENT, 503: Status.UNAVAILABLE, 504: Status.DEADLINE_EXCEEDED }

function deadlineOf(d: Date | number): number {
  return d instanceof Date ? d.getTime() : d
}

function textHeaders(metadata: Metadata): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(metadata.getMap())) if (typeof v === 'string') headers[k] = v
  return headers
}

/** Reads trace context straight from the call's metadata (text values only). */
const metadataGetter = {
  keys: (m: Metadata): string[] => Object.keys(m.getMap()),
  get: (m: Metadata, key: string): string | string[] | undefined => {
    const v = m.get(key)
    if (v.length === 1) return typeof v[0] === 'string' ? v[0] : undefined
    const text = v.filter((x): x is string => typeof x === 'string')
    return text.length === 0 ? undefined : text
  },
}

function textValues(values: (string | Buffer)[]): string[] | undefined {
  return values.length === 0 ? undefined : values.map(String)
}

export function meshServerInterceptors(mesh: Mesh): ServerInterceptor[] {
  const gate = mesh.inbound
  const metrics = rpcMetrics(mesh)
  const calls = inflightScopes(mesh)
  const interceptor: ServerInterceptor = (method, call) => {
    const path = method.path
    const t0 = performance.now()
    let scope: GrpcCallScope | undefined
    let trace: ReturnType<typeof extractTraceContext>
    let done = false
    let permit: AdmissionController | undefined
    let queued: QueueEntry | undefined
    const finish = (code: Status) => {
      if (done) return
      done = true
      if (queued !== undefined) gate.admission?.cancel(queued)
      const ms = performance.now() - t0
      if (scope !== undefined) {
        calls.delete(scope)
        gate.leave()
        permit?.release(ms)
      }
      metrics.server.record(ms / 1000, metrics.attributes('s', path, code, undefined))
    }
    const refuse = (refusal: Refusal) => {
      // Refusals made before processing go out as UNAVAILABLE, the one code grpc-js retries for every method.
      const code = refusal.rejected ? Status.UNAVAILABLE : (STATUS_FOR_HTTP[refusal.status] ?? Status.UNAVAILABLE)
      const trailers = new Metadata()
      if (refusal.rejected) trailers.set(REJECTED_HEADER, '1')
      if (refusal.retryAfter !== undefined) trailers.set('grpc-retry-pushback-ms', String(Math.round(refusal.retryAfter * 1000)))
      finish(code)
      // Straight to the transport: this interceptor's own sendStatus would wait for the metadata it holds back.
      call.sendStatus({ code, details: refusal.error.message, metadata: trailers })
    }
    const inScope = (fn: () => void) => (scope === undefined ? fn() : callScope.run(scope, () => withTraceContext(trace, fn)))
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            if (done) return // cancelled before its metadata was processed: the app never sees it
            const admission = gate.admit(textValues(metadata.get(DEADLINE_HEADER)))
            if (!admission.ok) return refuse(admission)
            const deadline = Math.min(admission.deadline, deadlineOf(call.getDeadline()))
            const begin = (control: AdmissionController | undefined) => {
              permit = control
              scope = new GrpcCallScope(deadline)
              calls.add(scope)
              gate.enter()
              trace = extractTraceContext(metadata, metadataGetter)
              // A unary handler runs at half-close: only streaming calls run app code before it.
              if (method.requestStream) inScope(() => nextMetadata(metadata))
              else nextMetadata(metadata)
            }
            const control = gate.admission
            if (control === undefined) return begin(undefined)
            const caller = control.wantsCaller ? { headers: textHeaders(metadata), remoteAddress: call.getConnectionInfo().remoteAddress } : undefined
            queued = control.acquire(path, caller, deadline, {
              start: (withPermit) => {
                queued = undefined
                // The client left while the call waited: give the permit straight back.
                if (done) return withPermit ? control.release(0) : undefined
                begin(withPermit ? control : undefined)
              },
              refuse: (refusal) => {
                queued = undefined
                if (!done) refuse(refusal)
              },
            })
          },
          onReceiveMessage(message, nextMessage) {
            if (method.requestStream) inScope(() => nextMessage(message))
            else nextMessage(message)
          },
          onReceiveHalfClose(nextHalfClose) {
            inScope(nextHalfClose)
          },
          onCancel() {
            scope?.cancel()
            finish(Status.CANCELLED)
          },
        })
      },
      sendStatus(status, nextStatus) {
        const trailers = status.metadata ?? new Metadata()
        trailers.set(LOAD_HEADER, gate.loadReport())
        finish(status.code)
        nextStatus({ ...status, metadata: trailers })
      },
    })
  }
  return [interceptor]
}
