/**
 * One outbound gRPC call through the mesh (the client stack's request) and one attempt of it (the
 * stack's response), as http-call.ts is for HTTP. The call is what the mesh's interceptor hands
 * grpc-js: it keeps the request messages while the call may still be retried, and forwards the
 * caller's operations to whichever attempt is current. An attempt is a real grpc-js call pinned to
 * the endpoint the stack picked; it holds its response until the stack decides: `deliver()` hands
 * it to the caller's listener, `discard()` drops it because the call is retried elsewhere.
 *
 * When an attempt resolves: a unary response (no response stream) once it is complete, so that its
 * status decides retries, the breaker and the balancer exactly; a response stream at its headers
 * (the call is committed then: a stream flowing to the caller is never retried) or at a
 * trailers-only status.
 */
import { ErrorCodes, GRPC_PREVIOUS_ATTEMPTS, MeshletError, type CallContext, type Destination, type EndpointState } from '@meshlet/core'
import { Metadata, status as Status, type StatusObject } from '@grpc/grpc-js'
import type { InterceptingCallInterface, NextCall } from '@grpc/grpc-js/build/src/client-interceptors.js'
import type { InterceptingListener, MessageContext } from '@grpc/grpc-js/build/src/call-interface.js'
import type { InterceptorOptions } from '@grpc/grpc-js'
import { track, untrack } from './call-registry.js'

/** A request stream is kept for a retry up to this many messages; past it the call is not retried. */
export const MAX_KEPT_MESSAGES = 64

type Listener = Partial<InterceptingListener>

export class GrpcCall implements InterceptingCallInterface {
  readonly service: string
  readonly dest: Destination
  readonly options: InterceptorOptions
  readonly nextCall: NextCall
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
  metadata: Metadata = new Metadata()
  listener: Listener = {}
  /** The request messages, kept while the call may be sent again; undefined once it may not. */
  kept: unknown[] | undefined = []
  halfClosed = false
  /** The caller asked for a message it has not received yet: each new attempt is asked too. */
  readPending = false
  /** The attempt that gets the caller's messages, half-close and reads. */
  current: GrpcAttempt | undefined
  /** The caller cancelled: the status it asked for. */
  cancelled: { code: Status; details: string } | undefined
  /** The caller has its final status: nothing more reaches it. */
  done = false
  /** A mirrored copy: it gets the request messages and the half-close, nothing else. */
  shadow: InterceptingCallInterface | undefined
  /** Runs the call through the stack once grpc-js starts it. */
  readonly #run: (call: GrpcCall) => void

  constructor(service: string, dest: Destination, options: InterceptorOptions, nextCall: NextCall, run: (call: GrpcCall) => void) {
    this.service = service
    this.dest = dest
    this.options = options
    this.nextCall = nextCall
    const method = options.method_definition
    this.path = method.path
    this.requestStream = method.requestStream
    this.responseStream = method.responseStream
    this.#run = run
  }

  /** The metadata value `name`, when it is text. */
  header(name: string): string | undefined {
    const v = this.metadata.get(name)[0]
    return typeof v === 'string' ? v : undefined
  }

  // --- the InterceptingCallInterface grpc-js drives ---
  start(metadata: Metadata, listener: Listener = {}): void {
    this.metadata = metadata
    this.listener = listener
    this.#run(this)
  }
  sendMessageWithContext(context: MessageContext, message: unknown): void {
    const kept = this.kept
    if (kept !== undefined) {
      if (this.requestStream && kept.length >= MAX_KEPT_MESSAGES) this.kept = undefined
      else kept.push(message)
    }
    this.shadow?.sendMessageWithContext({}, message)
    this.current?.live?.sendMessageWithContext(context, message)
  }
  sendMessage(message: unknown): void {
    this.sendMessageWithContext({}, message)
  }
  startRead(): void {
    this.readPending = true
    this.current?.live?.startRead()
  }
  halfClose(): void {
    this.halfClosed = true
    this.shadow?.halfClose()
    this.current?.live?.halfClose()
  }
  /**
   * The caller cancels. An attempt on the wire is cancelled a macrotask later: grpc-js (1.14) ends a
   * call cancelled while its metadata is still being filtered, but then starts the attempt anyway
   * and never cancels it. Without one, the call ends now; what the stack answers later is dropped.
   */
  cancelWithStatus(code: Status, details: string): void {
    if (this.cancelled !== undefined || this.done) return
    this.cancelled = { code, details }
    const real = this.current?.live
    if (real !== undefined) setImmediate(() => real.cancelWithStatus(code, details))
    else this.finish({ code, details, metadata: new Metadata() })
  }
  getPeer(): string {
    return this.current?.real?.getPeer() ?? ''
  }
  getAuthContext(): ReturnType<InterceptingCallInterface['getAuthContext']> {
    return this.current?.real?.getAuthContext() ?? null
  }

  /** Ends the call for the caller with `status` (once), as a real call would: asynchronously. */
  finish(status: StatusObject): void {
    if (this.done) return
    this.done = true
    this.kept = undefined
    const listener = this.listener
    process.nextTick(() => listener.onReceiveStatus?.(status))
  }
}

const PENDING = 0
const HELD = 1
const DELIVERED = 2
const DISCARDED = 3

export class GrpcAttempt implements InterceptingListener {
  readonly call: GrpcCall
  real: InterceptingCallInterface | undefined
  headers: Metadata | undefined
  status: StatusObject | undefined
  #state = PENDING
  #messages: unknown[] | undefined
  #resolve: ((a: GrpcAttempt) => void) | undefined
  #reject: ((e: unknown) => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined
  #id: string | undefined
  #ended: ((a: GrpcAttempt) => void)[] | undefined

  constructor(call: GrpcCall, resolve: (a: GrpcAttempt) => void, reject: (e: unknown) => void) {
    this.call = call
    this.#resolve = resolve
    this.#reject = reject
  }

  /** The real call while it has no status yet. */
  get live(): InterceptingCallInterface | undefined {
    return this.status === undefined ? this.real : undefined
  }

  /**
   * Makes the real call to `ctx.endpoint` (marked so that the picker pins it there) and replays
   * what the caller sent so far. With `budget` (ms; a per-try timeout shorter than the deadline),
   * an attempt without its response by then fails with `expired()`; the call's own deadline needs
   * no timer here: grpc-js enforces it (`grpc-timeout` from the call options).
   */
  start(ctx: CallContext, endpoint: EndpointState, budget: number | undefined, expired: (ctx: CallContext) => Error, revisionKey: string): void {
    const call = this.call
    let real: InterceptingCallInterface
    try {
      real = call.nextCall(call.options)
    } catch (err) {
      // A closed client: grpc-js throws. The call fails UNAVAILABLE saying why, and says nothing of the endpoint.
      return this.#fail(new MeshletError(ErrorCodes.CLOSED, `meshlet: ${(err as Error)?.message ?? String(err)}`, { cause: err }))
    }
    this.real = real
    let md = call.metadata
    if (ctx.attempt > 1) {
      md = md.clone()
      // gRPC A6's marker of a retry, so that servers can tell one (and count it) as from grpc-js.
      md.set(GRPC_PREVIOUS_ATTEMPTS, String(ctx.attempt - 1))
    }
    if (ctx.revision !== undefined) md.set(revisionKey, ctx.revision)
    this.#id = track(md, endpoint)
    if (budget !== undefined) {
      this.#timer = setTimeout(() => {
        this.#fail(expired(ctx))
        real.cancelWithStatus(Status.CANCELLED, 'meshlet: attempt timed out')
      }, budget)
    }
    const signal = ctx.signal
    if (signal !== undefined) {
      this.#signal = signal
      this.#onAbort = () => {
        this.#fail(new MeshletError(ErrorCodes.CANCELLED, `Cancelled: the inbound request this call to "${call.service}" was made for was cancelled.`))
        real.cancelWithStatus(Status.CANCELLED, `Cancelled: the inbound request this call to "${call.service}" was made for was cancelled.`)
      }
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
    call.current = this
    real.start(md, this)
    for (const m of call.kept ?? []) real.sendMessageWithContext({}, m)
    if (call.halfClosed) real.halfClose()
    if (call.readPending) real.startRead()
  }

  // --- the real call's listener ---
  onReceiveMetadata(metadata: Metadata): void {
    this.headers = metadata
    if (this.#state === DELIVERED) this.call.listener.onReceiveMetadata?.(metadata)
    else if (this.#state === PENDING && this.call.responseStream) this.#settle()
  }

  onReceiveMessage(message: unknown): void {
    if (this.#state === DELIVERED) {
      this.call.readPending = false
      this.call.listener.onReceiveMessage?.(message)
    } else if (this.#state !== DISCARDED) (this.#messages ??= []).push(message)
  }

  onReceiveStatus(status: StatusObject): void {
    this.status = status
    this.#stop()
    if (this.#state === PENDING) return this.#settle()
    if (this.#state === DELIVERED) this.#end()
  }

  #settle(): void {
    const resolve = this.#resolve
    if (resolve === undefined) return
    this.#resolve = this.#reject = undefined
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#state = HELD
    resolve(this)
  }

  /** Fails the attempt before it resolved (timeout, cancellation, closed client); later news is dropped. */
  #fail(err: Error): void {
    const reject = this.#reject
    if (reject === undefined) return
    this.#resolve = this.#reject = undefined
    this.#stop()
    this.#state = DISCARDED
    reject(err)
  }

  /** The attempt is over on the wire (or given up): forget its timer, its mark and the caller's signal. */
  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#id !== undefined) untrack(this.#id)
    this.#id = undefined
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener('abort', this.#onAbort)
    this.#onAbort = undefined
  }

  /** A response still streaming calls `ended` at its status; false when it is complete already. */
  whenEnded(ended: (a: GrpcAttempt) => void): boolean {
    if (this.status !== undefined) return false
    ;(this.#ended ??= []).push(ended)
    return true
  }

  /** Hands the held response to the caller's listener, replaying what arrived meanwhile. */
  deliver(): void {
    const call = this.call
    this.#state = DELIVERED
    call.kept = undefined // committed: never sent again
    if (call.done) return this.#cancelUnwanted()
    const l = call.listener
    if (this.headers !== undefined) l.onReceiveMetadata?.(this.headers)
    const messages = this.#messages
    this.#messages = undefined
    if (messages !== undefined) {
      call.readPending = false
      for (const m of messages) l.onReceiveMessage?.(m)
    }
    if (this.status !== undefined) this.#end()
  }

  /** Drops the held response: the call is retried, or the caller has gone. */
  discard(): void {
    if (this.#state === DELIVERED || this.#state === DISCARDED) return
    this.#state = DISCARDED
    this.#messages = undefined
    this.#cancelUnwanted()
  }

  #cancelUnwanted(): void {
    this.live?.cancelWithStatus(Status.CANCELLED, 'meshlet: response not wanted (retried elsewhere, or the caller has gone)')
  }

  #end(): void {
    const call = this.call
    const status = this.status!
    if (!call.done) {
      call.done = true
      call.listener.onReceiveStatus?.(status)
    }
    const ended = this.#ended
    this.#ended = undefined
    if (ended !== undefined) for (const f of ended) f(this)
  }

  /** A response no endpoint sent (a route's injected abort): `status`, already complete. */
  static synthetic(call: GrpcCall, status: StatusObject): GrpcAttempt {
    const a = new GrpcAttempt(call, () => {}, () => {})
    a.status = status
    a.#state = HELD
    a.#resolve = a.#reject = undefined
    return a
  }
}
