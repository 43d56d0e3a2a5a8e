/**
 * The gRPC side of the core server stack (drain → deadline → trace → admission → telemetry →
 * load-report, the same roles as HTTP's). A GrpcCallScope supplies what only gRPC knows: metadata
 * values, the refusal as a status with trailers, the load report in trailing metadata, the method
 * path for admission and `rpc.server.call.duration`. The call's status going out, or its
 * cancellation, tells the stack the call ended.
 *
 * Refusals made before processing (drain, admission) are UNAVAILABLE with `meshlet-rejected: 1`,
 * and `grpc-retry-pushback-ms` for a rate limit, so clients retry them elsewhere whatever the
 * method; a malformed `meshlet-deadline` is INVALID_ARGUMENT, one already past DEADLINE_EXCEEDED.
 * The call's deadline is the earlier of `meshlet-deadline` and `grpc-timeout`.
 */
import { CallPhase, InboundCall, LOAD_HEADER, REJECTED_HEADER, serverStack, type CallerInfo, type Mesh, type Refusal } from '@meshlet/core'
import { Metadata, ServerInterceptingCall, status as Status, type ServerInterceptor, type ServerInterceptingCallInterface, type ServerListener } from '@grpc/grpc-js'
import { rpcMetrics, type RpcMetrics } from './grpc-metrics.js'

const STATUS_FOR_HTTP: Record<number, Status> = { 400: Status.INVALID_ARGUMENT, 503: Status.UNAVAILABLE, 504: Status.DEADLINE_EXCEEDED }

/** One gRPC call's inbound scope; its cancellation signal is made only when an outbound call asks. */
export class GrpcCallScope extends InboundCall {
  readonly #call: ServerInterceptingCallInterface
  readonly #methodPath: string
  readonly #metrics: RpcMetrics
  #metadata: Metadata | undefined
  #forward: ((metadata: Metadata) => void) | undefined
  readonly #requestStream: boolean
  #load: string | undefined
  /** The status the call ended with (CANCELLED until one was sent). */
  code: Status = Status.CANCELLED

  constructor(call: ServerInterceptingCallInterface, path: string, requestStream: boolean, metrics: RpcMetrics) {
    super()
    this.#call = call
    this.#methodPath = path
    this.#requestStream = requestStream
    this.#metrics = metrics
    const d = call.getDeadline()
    this.transportDeadline = d instanceof Date ? d.getTime() : d
  }

  /** Holds the call's metadata until the stack lets it through to the handler. */
  received(metadata: Metadata, forward: (metadata: Metadata) => void): void {
    this.#metadata = metadata
    this.#forward = forward
  }

  /** Whether app code runs before half-close: a unary handler runs only then, a streaming one at once. */
  get requestStream(): boolean {
    return this.#requestStream
  }

  /** The load report for the trailers, when the stack gave one. */
  get load(): string | undefined {
    return this.#load
  }

  header(name: string): string | string[] | undefined {
    const v = this.#metadata?.get(name)
    if (v === undefined || v.length === 0) return undefined
    if (v.length === 1) return typeof v[0] === 'string' ? v[0] : undefined
    const text = v.filter((x): x is string => typeof x === 'string')
    return text.length === 0 ? undefined : text
  }

  headerNames(): string[] {
    return this.#metadata === undefined ? [] : Object.keys(this.#metadata.getMap())
  }

  get path(): string {
    return this.#methodPath
  }

  caller(): CallerInfo {
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(this.#metadata?.getMap() ?? {})) if (typeof v === 'string') headers[k] = v
    return { headers, remoteAddress: this.#call.getConnectionInfo().remoteAddress }
  }

  /** Refusals made before processing go out as UNAVAILABLE, the one code grpc-js retries for every method. */
  writeRefusal(refusal: Refusal): void {
    const code = refusal.rejected ? Status.UNAVAILABLE : (STATUS_FOR_HTTP[refusal.status] ?? Status.UNAVAILABLE)
    const trailers = new Metadata()
    if (refusal.rejected) trailers.set(REJECTED_HEADER, '1')
    if (refusal.retryAfter !== undefined) trailers.set('grpc-retry-pushback-ms', String(Math.round(refusal.retryAfter * 1000)))
    // Straight to the transport: this interceptor's own sendStatus would wait for the metadata it holds back.
    this.#call.sendStatus({ code, details: refusal.error.message, metadata: trailers })
  }

  writeLoad(report: string): void {
    this.#load = report
  }

  runApp(): void {
    // A unary handler runs at half-close: only a streaming call runs app code on its metadata.
    if (this.#requestStream) this.runInScope(GrpcCallScope.#forwardMetadata)
    else GrpcCallScope.#forwardMetadata(this)
  }

  recordDuration(seconds: number, complete: boolean): void {
    this.#metrics.server.record(seconds, this.#metrics.attributes('s', this.#methodPath, complete ? this.code : Status.CANCELLED, undefined))
  }

  static #forwardMetadata(call: GrpcCallScope): void {
    const forward = call.#forward!
    const metadata = call.#metadata!
    call.#forward = undefined
    forward(metadata)
  }
}

/** Runs app code for `scope` in its call scope once the stack let it through; before that, as it comes. */
function inScope(scope: GrpcCallScope, fn: () => void): void {
  if (scope.phase === CallPhase.Running) scope.runInScope(fn)
  else fn()
}

export function meshServerInterceptors(mesh: Mesh): ServerInterceptor[] {
  const stack = serverStack(mesh.inbound)
  const metrics = rpcMetrics(mesh)
  const interceptor: ServerInterceptor = (method, call) => {
    const scope = new GrpcCallScope(call, method.path, method.requestStream, metrics)
    const listener: ServerListener = {
      onReceiveMetadata(metadata, next) {
        scope.received(metadata, next)
        // Cancelled before its metadata was processed: the stack ignores it and the app never sees it.
        stack.accept(scope)
      },
      onReceiveMessage(message, next) {
        if (scope.requestStream) inScope(scope, () => next(message))
        else next(message)
      },
      onReceiveHalfClose(next) {
        inScope(scope, next)
      },
      onCancel() {
        stack.end(scope, false)
      },
    }
    return new ServerInterceptingCall(call, {
      start(next) {
        next(listener)
      },
      sendStatus(status, next) {
        const trailers = status.metadata ?? new Metadata()
        const load = scope.load
        if (load !== undefined) trailers.set(LOAD_HEADER, load)
        scope.code = status.code
        stack.end(scope, true)
        next({ ...status, metadata: trailers })
      },
    })
  }
  return [interceptor]
}
