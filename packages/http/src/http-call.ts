/**
 * One outbound HTTP call through the mesh (the client stack's request) and one attempt of it (the
 * stack's response). An attempt holds its response until the stack decides: `deliver()` hands it to
 * the caller's handler, `discard()` drops it because the call is retried elsewhere.
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { ATTEMPT_HEADER, ErrorCodes, MeshletError } from '@meshlet/core'

type DispatchHandler = Dispatcher.DispatchHandler
type DispatchController = Dispatcher.DispatchController
type Headers = Record<string, string | string[] | undefined>

/** Larger held error bodies are cut off (the connection is reset) instead of read to the end. */
const MAX_DISCARD_BYTES = 64 * 1024

/** A request body that can be produced again for each attempt: `replayableBody(() => createReadStream(path))`. */
export class ReplayableBody implements AsyncIterable<Uint8Array> {
  readonly #factory: () => AsyncIterable<Uint8Array> | Readable
  constructor(factory: () => AsyncIterable<Uint8Array> | Readable) {
    this.#factory = factory
  }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#factory()[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>
  }
}

/** Marks a streaming body as safe to send again on a retry by giving a way to make it anew. */
export function replayableBody(factory: () => AsyncIterable<Uint8Array> | Readable): ReplayableBody {
  return new ReplayableBody(factory)
}

/** Tracks whether an async iterable body was started, so an unsent one may still be retried. */
class TrackedBody implements AsyncIterable<unknown> {
  started = false
  constructor(readonly inner: AsyncIterable<unknown>) {}
  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    this.started = true
    return this.inner[Symbol.asyncIterator]()
  }
}

export class HttpCall implements DispatchController {
  readonly handler: DispatchHandler
  readonly method: string
  /** The attempt currently on the wire or being delivered. */
  current: HttpAttempt | undefined
  #reason: Error | null = null
  readonly #given: Dispatcher.DispatchOptions
  readonly #tracked: TrackedBody | undefined
  /** Headers the stack adds (deadline, trace context), merged into the options on first dispatch. */
  #extra: Record<string, string> | undefined
  #opts: Dispatcher.DispatchOptions | undefined

  constructor(opts: Dispatcher.DispatchOptions, handler: DispatchHandler) {
    this.handler = handler
    this.method = opts.method
    this.#given = opts
    const body = opts.body as unknown
    if (body != null && typeof body === 'object' && !(body instanceof Uint8Array) && !(body instanceof Readable) && !(body instanceof ReplayableBody) && Symbol.asyncIterator in body) {
      this.#tracked = new TrackedBody(body as AsyncIterable<unknown>)
    }
  }

  /** Adds a request header; only before the first attempt is dispatched (the options are fixed then). */
  setHeader(name: string, value: string): void {
    ;(this.#extra ??= {})[name] = value
  }

  /** The options every attempt dispatches: the caller's, with the stack's headers and a tracked body. */
  get opts(): Dispatcher.DispatchOptions {
    return (this.#opts ??= this.#build())
  }

  /** The options of retry `attempt` (2 or more): as `opts`, marked with `meshlet-attempt` so the server does not retry again. */
  retryOpts(attempt: number): Dispatcher.DispatchOptions {
    return this.#build({ ...this.#extra, [ATTEMPT_HEADER]: String(attempt) })
  }

  #build(extra = this.#extra): Dispatcher.DispatchOptions {
    const opts = this.#given
    const tracked = this.#tracked
    const headers = extra === undefined ? opts.headers : withHeaders(opts.headers, extra)
    if (tracked === undefined && headers === opts.headers) return opts
    // A fixed-shape literal, not a spread: undici's Request constructor is many times slower on a
    // spread copy of the caller's options (measured with bench/ and --cpu-prof).
    return {
      origin: opts.origin,
      path: opts.path,
      method: opts.method,
      body: tracked === undefined ? opts.body : (tracked as never),
      headers,
      query: opts.query,
      idempotent: opts.idempotent,
      blocking: opts.blocking,
      upgrade: opts.upgrade,
      headersTimeout: opts.headersTimeout,
      bodyTimeout: opts.bodyTimeout,
      reset: opts.reset,
      throwOnError: opts.throwOnError,
      expectContinue: opts.expectContinue,
      typeOfService: opts.typeOfService,
    }
  }

  /** The request header `name` (lowercase), whatever shape the caller gave headers in. */
  header(name: string): string | undefined {
    const h = this.#given.headers as unknown
    if (h == null) return undefined
    if (Array.isArray(h)) {
      for (let i = 0; i + 1 < h.length; i += 2) if (String(h[i]).toLowerCase() === name) return String(h[i + 1])
      return undefined
    }
    if (typeof (h as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const [k, v] of h as Iterable<[string, string]>) if (k.toLowerCase() === name) return v
      return undefined
    }
    for (const k in h as Record<string, unknown>) {
      if (k.toLowerCase() === name) {
        const v = (h as Record<string, unknown>)[k]
        return Array.isArray(v) ? v.join(', ') : v == null ? undefined : String(v)
      }
    }
    return undefined
  }

  /** True when the body can be sent again: absent, in memory, marked replayable, or never started. */
  bodyResendable(): boolean {
    const body = this.#given.body as unknown
    if (body == null || typeof body === 'string' || body instanceof Uint8Array || body instanceof ReplayableBody) return true
    if (this.#tracked !== undefined) return !this.#tracked.started
    if (body instanceof Readable) return !Readable.isDisturbed(body)
    // FormData and Blob are re-read from their source by undici on every dispatch.
    return typeof body === 'object' && (body instanceof Blob || (typeof FormData !== 'undefined' && body instanceof FormData))
  }

  // --- the controller handed to the caller's handler: it steers whichever attempt is current ---
  get aborted(): boolean {
    return this.#reason !== null
  }
  get paused(): boolean {
    return this.current?.controller?.paused ?? false
  }
  get reason(): Error | null {
    return this.#reason
  }
  abort(reason: Error): void {
    if (this.#reason !== null) return
    this.#reason = reason ?? new MeshletError(ErrorCodes.CANCELLED, 'Request aborted by the caller.')
    this.current?.controller?.abort(this.#reason)
  }
  pause(): void {
    this.current?.controller?.pause()
  }
  resume(): void {
    this.current?.controller?.resume()
  }

  /** Reports a call that ended without a deliverable response. */
  fail(err: unknown): void {
    this.handler.onResponseError?.(this, err as Error)
  }
}

type RequestHeaders = Dispatcher.DispatchOptions['headers']

/** `headers` in whatever shape the caller gave them, with `extra` added. */
export function withHeaders(headers: RequestHeaders, extra: Record<string, string>): RequestHeaders {
  if (headers == null) return extra
  if (Array.isArray(headers)) {
    const flat = [...(headers as unknown[])]
    for (const k in extra) flat.push(k, extra[k])
    return flat as RequestHeaders
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const out: Record<string, string> = {}
    for (const [k, v] of headers as Iterable<[string, string]>) out[k] = v
    return Object.assign(out, extra)
  }
  return { ...(headers as Record<string, string>), ...extra }
}

const HELD = 1
const DELIVERED = 2
const DISCARDED = 3

export class HttpAttempt implements DispatchHandler {
  readonly call: HttpCall
  controller: DispatchController | undefined
  statusCode = 0
  headers: Headers = {}
  statusMessage: string | undefined
  #state = 0
  #resolve: ((a: HttpAttempt) => void) | undefined
  #reject: ((e: unknown) => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #chunks: Buffer[] | undefined
  #held = 0
  #trailers: Headers | undefined
  #error: Error | undefined
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined
  /** Why the attempt was given up before undici started it (it waited in the pool's queue or for a connection). */
  #early: Error | undefined

  constructor(call: HttpCall, resolve: (a: HttpAttempt) => void, reject: (e: unknown) => void) {
    this.call = call
    this.#resolve = resolve
    this.#reject = reject
  }

  /** Aborts the attempt with `reason` after `ms` unless response headers came first. */
  armTimer(ms: number, reason: () => Error): void {
    this.#timer = setTimeout(() => this.#abort(reason()), ms)
  }

  /** Aborts the attempt when `signal` (the inbound request's cancellation) fires. */
  follow(signal: AbortSignal): void {
    this.#signal = signal
    this.#onAbort = () => this.#abort(signal.reason as Error)
    signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  /**
   * Aborts through undici once it started the attempt. Before that (queued in the pool, or still
   * connecting) there is no controller yet: the attempt fails now, so a deadline holds while it
   * waits, and undici's request is aborted as soon as it starts.
   */
  #abort(reason: Error): void {
    if (this.controller !== undefined) return this.controller.abort(reason)
    if (this.#reject === undefined) return
    this.#early = reason
    this.#settle()
    const reject = this.#reject
    this.#resolve = this.#reject = undefined
    reject(reason)
  }

  onRequestStart(controller: DispatchController): void {
    this.controller = controller
    if (this.#early !== undefined) return controller.abort(this.#early)
    this.call.current = this
    if (this.call.aborted) controller.abort(this.call.reason!)
    else if (this.#signal?.aborted) controller.abort(this.#signal.reason as Error)
  }

  onResponseStart(_c: DispatchController, statusCode: number, headers: Headers, statusMessage?: string): void {
    this.#settle()
    this.statusCode = statusCode
    this.headers = headers
    this.statusMessage = statusMessage
    this.#state = HELD
    const resolve = this.#resolve!
    this.#resolve = this.#reject = undefined
    resolve(this)
  }

  onResponseData(c: DispatchController, chunk: Buffer): void {
    if (this.#state === DELIVERED) return void this.call.handler.onResponseData?.(this.call, chunk)
    if (this.#state === HELD) {
      ;(this.#chunks ??= []).push(chunk)
      this.#held += chunk.length
    } else if (this.#state === DISCARDED && (this.#held += chunk.length) > MAX_DISCARD_BYTES) c.abort(new Error('discarded response body too large'))
  }

  onResponseEnd(_c: DispatchController, trailers: Headers): void {
    if (this.#state === DELIVERED) return void this.call.handler.onResponseEnd?.(this.call, trailers)
    if (this.#state === HELD) this.#trailers = trailers
  }

  onResponseError(_c: DispatchController, err: Error): void {
    if (this.#reject !== undefined) {
      this.#settle()
      const reject = this.#reject
      this.#resolve = this.#reject = undefined
      return reject(err)
    }
    if (this.#state === DELIVERED) this.call.handler.onResponseError?.(this.call, err)
    else if (this.#state === HELD) this.#error = err
  }

  /** A response that no endpoint sent (fault injection): `status`, an empty body, already complete. */
  static synthetic(call: HttpCall, status: number): HttpAttempt {
    const a = new HttpAttempt(call, () => {}, () => {})
    a.statusCode = status
    a.headers = { 'content-length': '0', 'meshlet-fault': 'abort' }
    a.#state = HELD
    a.#trailers = {}
    return a
  }

  /** Hands the held response to the caller's handler, replaying what arrived meanwhile. */
  deliver(): void {
    this.#state = DELIVERED
    const h = this.call.handler
    h.onResponseStart?.(this.call, this.statusCode, this.headers as never, this.statusMessage)
    const chunks = this.#chunks
    this.#chunks = undefined
    if (chunks !== undefined) for (const c of chunks) h.onResponseData?.(this.call, c)
    if (this.#trailers !== undefined) h.onResponseEnd?.(this.call, this.#trailers as never)
    else if (this.#error !== undefined) h.onResponseError?.(this.call, this.#error)
  }

  /** Drops the held response: small bodies are read to the end so the connection is reused. */
  discard(): void {
    if (this.#state !== HELD) return
    this.#state = DISCARDED
    this.#chunks = undefined
    if (this.#trailers === undefined && this.#error === undefined && this.#held > MAX_DISCARD_BYTES) this.controller?.abort(new Error('response discarded for retry'))
  }

  #settle(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener('abort', this.#onAbort)
  }
}
