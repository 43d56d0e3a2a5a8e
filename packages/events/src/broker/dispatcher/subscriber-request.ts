/**
 * One delivery attempt on the wire: POST an encoded event through a dispatcher (the broker mesh's
 * agent, so `http://<service>/…` is balanced across the service's instances), and read the
 * answer's body up to a limit. The attempt ends, aborted, at `timeoutMs` (headers and body), or
 * when its AttemptGroup is aborted (the trigger stopped).
 *
 * It dispatches straight to the dispatcher with its own handler instead of undici's `request()`:
 * no URL is built, no body stream or async iterator is made, and no AbortSignal per attempt (a
 * timer and the group stand in for AbortSignal.timeout and AbortSignal.any), which the broker's
 * profile showed costing more than the rest of the attempt.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'

export interface EncodedMessage {
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array | string | undefined
}

export interface SubscriberResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  /** At most `maxBodyBytes` of the body. */
  readonly body: Buffer
  /** The body was longer than `maxBodyBytes` and the rest was not read. */
  readonly truncated: boolean
}

/** An attempt that got no HTTP answer (connection refused or reset, timeout, no instance): retryable. */
export class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'AttemptFailure'
  }
}

/** Where an attempt goes: `origin` + `path` are what is dispatched, `url` names it in messages. */
export interface AttemptTarget {
  readonly origin: string
  readonly path: string
  readonly url: string
}

export interface AttemptOptions {
  readonly dispatcher: Dispatcher
  readonly timeoutMs: number
  readonly maxBodyBytes: number
}

const EMPTY = Buffer.alloc(0)

/**
 * The attempts of one trigger in flight. `abort` ends every one of them (and every later one at
 * once) with the given reason: the attempt's promise rejects with it, not with an AttemptFailure.
 */
export class AttemptGroup {
  readonly #live = new Set<SubscriberAttempt>()
  #reason: unknown

  /** POSTs `message` to `target`; resolves with any HTTP answer, rejects with an AttemptFailure when there is none. */
  post(target: AttemptTarget, message: EncodedMessage, headers: Readonly<Record<string, string>>, options: AttemptOptions): Promise<SubscriberResponse> {
    if (this.#reason !== undefined) return Promise.reject(this.#reason)
    return new Promise<SubscriberResponse>((resolve, reject) => {
      const attempt = new SubscriberAttempt(this.#live, target.url, options, resolve, reject)
      this.#live.add(attempt)
      attempt.start(target, message, headers, options.dispatcher)
    })
  }

  abort(reason: unknown): void {
    this.#reason ??= reason
    for (const attempt of [...this.#live]) attempt.cancel(this.#reason)
  }
}

/** A v2 undici dispatch handler collecting one answer; settles its promise exactly once. */
class SubscriberAttempt implements Dispatcher.DispatchHandler {
  readonly #live: Set<SubscriberAttempt>
  readonly #url: string
  readonly #timeoutMs: number
  readonly #maxBodyBytes: number
  #resolve: ((res: SubscriberResponse) => void) | undefined
  #reject: ((err: unknown) => void) | undefined
  #controller: Dispatcher.DispatchController | undefined
  /** Why it was ended before undici handed over a controller; applied once it does. */
  #pendingAbort: Error | undefined
  #timer: NodeJS.Timeout | undefined
  #status = 0
  #headers: IncomingHttpHeaders = {}
  #chunks: Buffer[] | undefined
  #size = 0
  #truncated = false

  constructor(live: Set<SubscriberAttempt>, url: string, options: AttemptOptions, resolve: (res: SubscriberResponse) => void, reject: (err: unknown) => void) {
    this.#live = live
    this.#url = url
    this.#timeoutMs = options.timeoutMs
    this.#maxBodyBytes = options.maxBodyBytes
    this.#resolve = resolve
    this.#reject = reject
  }

  start(target: AttemptTarget, message: EncodedMessage, headers: Readonly<Record<string, string>>, dispatcher: Dispatcher): void {
    this.#timer = setTimeout(() => this.#fail(new AttemptFailure(`${this.#url} did not answer within ${this.#timeoutMs}ms (delivery.timeout)`, true), true), this.#timeoutMs)
    try {
      dispatcher.dispatch({ origin: target.origin, path: target.path, method: 'POST', headers, body: message.body ?? '' }, this)
    } catch (err) {
      this.#fail(this.#failure(err), false)
    }
  }

  /** The trigger stopped: the attempt ends with `reason`, as it is. */
  cancel(reason: unknown): void {
    this.#fail(reason, true)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#pendingAbort !== undefined) controller.abort(this.#pendingAbort)
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.#status = statusCode
    this.#headers = headers
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#truncated) return
    const room = this.#maxBodyBytes - this.#size
    if (chunk.length > room) {
      if (room > 0) (this.#chunks ??= []).push(chunk.subarray(0, room))
      this.#size = this.#maxBodyBytes
      this.#truncated = true
      this.#succeed()
      // The rest is not read: the connection goes, the answer stands.
      c.abort(new Error('the answer is longer than the broker reads'))
      return
    }
    ;(this.#chunks ??= []).push(chunk)
    this.#size += chunk.length
  }

  onResponseEnd(): void {
    this.#succeed()
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.#fail(this.#failure(err), false)
  }

  #succeed(): void {
    const resolve = this.#resolve
    if (resolve === undefined) return
    this.#done()
    const chunks = this.#chunks
    const body = chunks === undefined ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#size)
    resolve({ status: this.#status, headers: this.#headers, body, truncated: this.#truncated })
  }

  /** Rejects with `err`; `abort`: also stop what undici is doing (a timeout or a cancel, not undici's own error). */
  #fail(err: unknown, abort: boolean): void {
    const reject = this.#reject
    if (reject === undefined) return
    this.#done()
    if (abort) {
      const reason = err instanceof Error ? err : new Error(String(err))
      if (this.#controller !== undefined) this.#controller.abort(reason)
      else this.#pendingAbort = reason
    }
    reject(err)
  }

  #done(): void {
    this.#resolve = this.#reject = undefined
    clearTimeout(this.#timer)
    this.#live.delete(this)
  }

  #failure(err: unknown): AttemptFailure {
    const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } }
    const detail = e.cause?.message ?? e.message ?? String(err)
    const code = e.cause?.code ?? e.code
    return new AttemptFailure(`POST ${this.#url} failed: ${detail}${code !== undefined && !detail.includes(code) ? ` (${code})` : ''}`, false, { cause: err })
  }
}
