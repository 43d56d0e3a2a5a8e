/**
 * The client interceptor: what grpc-js service config cannot do. Per call it applies the deadline
 * (the earlier of the caller's, the inbound request's from the call scope, and the destination's
 * timeout; sent as `grpc-timeout`), follows the inbound request's cancellation, sends the trace
 * context, goes through the destination's breaker, and records `rpc.client.call.duration`.
 * A call that has no time left, or meets an open breaker, fails without a network write.
 */
import { ErrorCodes, MIRROR_HEADER, breakerFilter, deadlineExceeded, injectTraceContext, isMeshletError, type ClientProtocol, type Destination, type EndpointState, type Filter, type Mesh } from '@meshlet/core'
import { InterceptingCall, Metadata, status as Status, type CallOptions, type ClientOptions, type Interceptor, type InterceptorOptions, type StatusObject } from '@grpc/grpc-js'
import type { InterceptingCallInterface, NextCall } from '@grpc/grpc-js/build/src/client-interceptors.js'
import type { InterceptingListener, MessageContext } from '@grpc/grpc-js/build/src/call-interface.js'
import { rpcMetrics } from './grpc-metrics.js'
import { grpcClassifier, type CallOutcome } from './grpc-status.js'
import { registrationOf } from './registry.js'
import { MESH_ARG } from './resolver-meshlet.js'
import { ROUTE_REVISION_KEY, statusForHttp } from './routing.js'
import { track, untrack } from './call-registry.js'

type Deadline = CallOptions['deadline']

function deadlineMs(d: Deadline): number {
  if (d === undefined) return Infinity
  return d instanceof Date ? d.getTime() : d
}

function textValue(metadata: Metadata, name: string): string | undefined {
  const v = metadata.get(name)[0]
  return typeof v === 'string' ? v : undefined
}

/** True when `path` (`/pkg.Service/Method`) is listed, by method or by service, as idempotent. */
export function isIdempotentPath(list: readonly string[] | undefined, path: string): boolean {
  if (list === undefined || list.length === 0) return false
  const service = path.slice(1, path.lastIndexOf('/'))
  for (const n of list) if (n === path || n === service || n === `/${service}` || `/${n}` === path) return true
  return false
}

/** A protocol shape for the core's breaker filter: only the classifier is read. */
const breakerProtocol = { classifier: grpcClassifier } as unknown as ClientProtocol<unknown, CallOutcome>
/** One filter per breaker (a destination replaces its breaker when the settings change). */
const breakerFilters = new WeakMap<object, Filter<unknown, CallOutcome>>()
function breakerFilterOf(breaker: NonNullable<Destination['breaker']>): Filter<unknown, CallOutcome> {
  let f = breakerFilters.get(breaker)
  if (f === undefined) breakerFilters.set(breaker, (f = breakerFilter(breaker, breakerProtocol)))
  return f
}

type Go = (metadata: Metadata, listener: Partial<InterceptingListener>, start: (real: InterceptingCallInterface) => void) => void

/**
 * One call: the real grpc-js call is made only when the call may go (deadline left, breaker
 * closed); until then, and when it may not, nothing reaches the network. The interceptor returns
 * it as it is: grpc-js uses only the InterceptingCallInterface methods of what an interceptor
 * returns, and an InterceptingCall around it would add a requester layer (three bound listeners
 * and a listener object per call) that does nothing here.
 */
class MeshCall implements InterceptingCallInterface {
  #real: InterceptingCallInterface | undefined
  #failed = false
  readonly #queue: ((c: InterceptingCallInterface) => void)[] = []
  readonly #go: Go
  /** A mirrored copy: it gets the request messages and the half-close, nothing else. */
  #shadow: InterceptingCallInterface | undefined
  /** Messages kept for a copy that is not started yet (a route decided to mirror this call). */
  #kept: unknown[] | undefined
  #halfClosed = false

  constructor(go: Go) {
    this.#go = go
  }

  start(metadata: Metadata, listener: Partial<InterceptingListener> = {}): void {
    this.#go(metadata, listener, (real) => {
      this.#real = real
      for (const op of this.#queue.splice(0)) op(real)
    })
  }

  /** Ends the call with `status` without sending it (asynchronously, as a real call would). */
  fail(listener: Partial<InterceptingListener>, code: Status, details: string): void {
    this.#failed = true
    this.#queue.length = 0
    process.nextTick(() => listener.onReceiveStatus?.({ code, details, metadata: new Metadata() }))
  }

  /** The route mirrors this call: keep its request messages for the copy. */
  keepForMirror(): void {
    this.#kept = []
  }

  /** Starts feeding `shadow` the request: the messages so far, then as they come. */
  mirrorTo(shadow: InterceptingCallInterface): void {
    this.#shadow = shadow
    for (const m of this.#kept ?? []) shadow.sendMessageWithContext({}, m)
    this.#kept = undefined
    if (this.#halfClosed) shadow.halfClose()
  }

  #do(op: (c: InterceptingCallInterface) => void): void {
    if (this.#real !== undefined) op(this.#real)
    else if (!this.#failed) this.#queue.push(op)
  }
  /**
   * Forwarded a macrotask later: grpc-js (1.14) ends a call cancelled while its metadata is still
   * being filtered, but then starts the attempt anyway and never cancels it, so the server keeps a
   * call nobody waits for until its deadline. By the next macrotask the attempt exists and is
   * cancelled with the call.
   */
  cancelWithStatus(status: Status, details: string): void {
    this.#do((c) => setImmediate(() => c.cancelWithStatus(status, details)))
  }
  getPeer(): string {
    return this.#real?.getPeer() ?? ''
  }
  sendMessageWithContext(context: MessageContext, message: unknown): void {
    this.#kept?.push(message)
    this.#shadow?.sendMessageWithContext({}, message)
    this.#do((c) => c.sendMessageWithContext(context, message))
  }
  sendMessage(message: unknown): void {
    this.sendMessageWithContext({}, message)
  }
  startRead(): void {
    this.#do((c) => c.startRead())
  }
  halfClose(): void {
    this.#halfClosed = true
    this.#shadow?.halfClose()
    this.#do((c) => c.halfClose())
  }
  getAuthContext(): ReturnType<InterceptingCallInterface['getAuthContext']> {
    return this.#real?.getAuthContext() ?? null
  }
}

/** What a call's method path decides, worked out once per path. */
interface PathFacts {
  /** The registration `idempotent` was read from (register() may be called again). */
  readonly registration: ReturnType<typeof registrationOf>
  readonly idempotent: boolean
}

/** Writes trace context straight into the call's metadata. */
const metadataSetter = { set: (carrier: Metadata, key: string, value: string) => carrier.set(key, value) }

/** The mesh's client interceptors for calls to the mesh service `service`. */
export function meshInterceptors(mesh: Mesh, service: string): Interceptor[] {
  const metrics = rpcMetrics(mesh)
  const paths = new Map<string, PathFacts>()
  const factsOf = (path: string): PathFacts => {
    const registration = registrationOf(mesh)
    let f = paths.get(path)
    if (f === undefined || f.registration !== registration) {
      f = { registration, idempotent: isIdempotentPath(registration?.idempotent, path) }
      if (paths.size < 1000) paths.set(path, f)
    }
    return f
  }
  const interceptor: Interceptor = (options: InterceptorOptions, nextCall: NextCall) => {
    const dest = mesh.destination(service)
    if (dest === undefined) return new InterceptingCall(nextCall(options))
    const method = options.method_definition
    const path = method.path
    const facts = factsOf(path)
    const streaming = method.requestStream || method.responseStream
    const ctx = dest.newContext(facts.idempotent)
    let deadline = Math.min(ctx.deadline, deadlineMs(options.deadline))
    const t0 = performance.now()
    const record = (code: Status) => metrics.client.record((performance.now() - t0) / 1000, metrics.attributes('c', path, code, service))

    const call: MeshCall = new MeshCall((metadata, listener, started) => {
      // Routes match on the method path and metadata (core's routeCall, as for HTTP): the rule
      // picks the revision (the picker reads it from the call's context; the metadata tells the
      // server), may shorten the deadline, inject a fault, and mirror a unary-request call.
      ctx.deadline = deadline
      let delay = 0
      let mirror: EndpointState | undefined
      if (dest.routes !== undefined) {
        const d = dest.route({ method: 'POST', path, query: '', header: (name) => textValue(metadata, name) }, ctx, !method.requestStream)
        if (d !== undefined) {
          if (ctx.revision !== undefined) metadata.set(ROUTE_REVISION_KEY, ctx.revision)
          deadline = ctx.deadline
          if (d.abort !== undefined) {
            const code = statusForHttp(d.abort)
            record(code)
            return call.fail(listener, code, `Fault injected by a route of "${service}" (abort with HTTP status ${d.abort}).`)
          }
          delay = d.delay
          mirror = d.mirror
          if (mirror !== undefined) call.keepForMirror()
        }
      }
      if (delay > 0) setTimeout(() => proceed(metadata, listener, started, mirror), delay)
      else proceed(metadata, listener, started, mirror)
    })

    /** A fire-and-forget copy of the call to `shadow`: marked, never retried, its outcome ignored. */
    const startMirror = (metadata: Metadata, shadow: EndpointState): void => {
      const md = metadata.clone()
      md.set(MIRROR_HEADER, '1')
      if (shadow.address.revision !== undefined) md.set(ROUTE_REVISION_KEY, shadow.address.revision)
      let copy: InterceptingCallInterface
      try {
        copy = nextCall(options)
      } catch {
        return // the channel is closed: the call itself fails with UNAVAILABLE
      }
      const id = track(md, { ctx: { ...ctx, tried: undefined }, streaming: false, pinned: shadow })
      // A streamed answer is read and dropped, so that the copy does not stall its stream.
      copy.start(md, { onReceiveMessage: method.responseStream ? () => copy.startRead() : undefined, onReceiveStatus: () => untrack(id) })
      if (method.responseStream) copy.startRead()
      call.mirrorTo(copy)
    }

    const proceed = (metadata: Metadata, listener: Partial<InterceptingListener>, started: (real: InterceptingCallInterface) => void, mirror: EndpointState | undefined): void => {
      if (deadline <= Date.now()) {
        record(Status.DEADLINE_EXCEEDED)
        return call.fail(listener, Status.DEADLINE_EXCEEDED, deadlineExceeded(service, deadline, 1, false).message)
      }
      const signal = ctx.signal
      if (signal?.aborted) {
        record(Status.CANCELLED)
        return call.fail(listener, Status.CANCELLED, `Call to "${service}" was not sent: the inbound request it was made for was cancelled.`)
      }
      // The deadline travels as gRPC's own relative `grpc-timeout`, which every gRPC server reads;
      // not also as `meshlet-deadline`: an absolute time differs on every call, so HPACK can never
      // index it and both ends pay to encode it. A meshlet gRPC server still honours
      // `meshlet-deadline` when a client sends it.
      // grpc-js made `options` for this call alone (getInterceptingCall copies the call options).
      if (deadline !== Infinity) options.deadline = deadline
      if (dest.balancer.hashHeader !== undefined) ctx.hashKey = textValue(metadata, dest.balancer.hashHeader)
      injectTraceContext(metadata, metadataSetter)
      if (mirror !== undefined) startMirror(metadata, mirror)

      let real: InterceptingCallInterface | undefined
      const onAbort = signal === undefined ? undefined : () => real?.cancelWithStatus(Status.CANCELLED, `Cancelled: the inbound request this call to "${service}" was made for was cancelled.`)
      const send = (settle: ((s: StatusObject) => void) | undefined): void => {
        try {
          real = nextCall(options)
        } catch (err) {
          // A closed client: grpc-js throws. The call fails like any other (even when it was delayed
          // by a route and nobody would catch a throw), and it says nothing of the destination's health.
          const details = `meshlet: ${(err as Error)?.message ?? String(err)}`
          settle?.({ code: Status.CANCELLED, details, metadata: new Metadata() })
          record(Status.UNAVAILABLE)
          return call.fail(listener, Status.UNAVAILABLE, details)
        }
        const id = track(metadata, { ctx, streaming })
        if (onAbort !== undefined) signal!.addEventListener('abort', onAbort, { once: true })
        real.start(metadata, {
          onReceiveMetadata: (md) => listener.onReceiveMetadata?.(md),
          onReceiveMessage: (m) => listener.onReceiveMessage?.(m),
          onReceiveStatus: (s: StatusObject) => {
            untrack(id)
            if (onAbort !== undefined) signal!.removeEventListener('abort', onAbort)
            record(s.code)
            settle?.(s)
            listener.onReceiveStatus?.(s)
          },
        })
        started(real)
      }
      const breaker = dest.breaker
      if (breaker === undefined) return send(undefined)
      breakerFilterOf(breaker)(null, ctx, () => new Promise<CallOutcome>(send)).catch((err: unknown) => {
        if (real !== undefined) return
        record(Status.UNAVAILABLE)
        const open = isMeshletError(err) && err.code === ErrorCodes.BREAKER_OPEN
        call.fail(listener, Status.UNAVAILABLE, open ? err.message : `meshlet: ${(err as Error)?.message ?? String(err)}`)
      })
    }
    return call as unknown as InterceptingCall
  }
  return [interceptor]
}

/**
 * Client options for `new Client('meshlet:///<service>', credentials, options)`: the mesh's
 * interceptors first, then any in `options`; the target resolves through this mesh (call
 * register(mesh) first).
 */
export function meshClientOptions(mesh: Mesh, service: string, options: ClientOptions = {}): ClientOptions {
  if (options.interceptor_providers?.length) throw new TypeError('meshClientOptions: pass `interceptors`, not `interceptor_providers` (grpc-js allows only one of the two).')
  const reg = registrationOf(mesh)
  return { ...options, ...(reg !== undefined ? { [MESH_ARG]: reg.id } : {}), interceptors: [...meshInterceptors(mesh, service), ...(options.interceptors ?? [])] }
}

/**
 * Call options with per-call `interceptors` that keep the mesh's: grpc-js replaces the client's
 * interceptors with a call's own, which would silently drop deadline, breaker and metrics.
 */
export function meshCallOptions(mesh: Mesh, service: string, options: CallOptions = {}): CallOptions {
  if (!options.interceptors?.length && !options.interceptor_providers?.length) return options
  if (options.interceptor_providers?.length) throw new TypeError('meshCallOptions: pass `interceptors`, not `interceptor_providers` (grpc-js allows only one of the two).')
  return { ...options, interceptors: [...meshInterceptors(mesh, service), ...options.interceptors!] }
}
