/**
 * The server interceptor: drain → deadline and trace extraction → telemetry → app. A call is
 * refused before the app sees it when the mesh is draining (UNAVAILABLE with `meshlet-rejected: 1`,
 * so clients retry it elsewhere, whatever the method), when `meshlet-deadline` is malformed
 * (INVALID_ARGUMENT) or already past (DEADLINE_EXCEEDED). Admitted calls run the handler in a call
 * scope (the earlier of `meshlet-deadline` and `grpc-timeout`, and the call's cancellation), so
 * outbound HTTP and gRPC calls made for it inherit both; the load report goes in trailing metadata.
 */
import { callScope, DEADLINE_HEADER, ErrorCodes, extractTraceContext, LOAD_HEADER, MeshletError, REJECTED_HEADER, withTraceContext, type CallScope, type Mesh } from '@meshlet/core'
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
    const finish = (code: Status) => {
      if (done) return
      done = true
      if (scope !== undefined) {
        calls.delete(scope)
        gate.leave()
      }
      metrics.server.record((performance.now() - t0) / 1000, metrics.attributes('s', path, code, undefined))
    }
    const inScope = (fn: () => void) => (scope === undefined ? fn() : callScope.run(scope, () => withTraceContext(trace, fn)))
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            if (done) return // cancelled before its metadata was processed: the app never sees it
            const admission = gate.admit(textValues(metadata.get(DEADLINE_HEADER)))
            if (!admission.ok) {
              const code = STATUS_FOR_HTTP[admission.status] ?? Status.UNAVAILABLE
              const trailers = new Metadata()
              if (admission.rejected) trailers.set(REJECTED_HEADER, '1')
              finish(code)
              // Straight to the transport: this interceptor's own sendStatus would wait for the metadata it holds back.
              call.sendStatus({ code, details: admission.error.message, metadata: trailers })
              return
            }
            scope = new GrpcCallScope(Math.min(admission.deadline, deadlineOf(call.getDeadline())))
            calls.add(scope)
            gate.enter()
            const headers: Record<string, string> = {}
            for (const [k, v] of Object.entries(metadata.getMap())) if (typeof v === 'string') headers[k] = v
            trace = extractTraceContext(headers)
            inScope(() => nextMetadata(metadata))
          },
          onReceiveMessage(message, nextMessage) {
            inScope(() => nextMessage(message))
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
