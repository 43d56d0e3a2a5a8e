/**
 * One delivery attempt on the wire: POST an encoded event to a URL through a dispatcher (the broker
 * mesh's agent, so `http://<service>/…` is balanced across the service's instances), and read the
 * answer's body up to a limit. The attempt ends, aborted, at `timeoutMs` (headers and body), or
 * when `signal` aborts (the trigger stopped).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { request, type Dispatcher } from 'undici'

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

export interface AttemptOptions {
  readonly dispatcher: Dispatcher
  readonly timeoutMs: number
  readonly maxBodyBytes: number
  readonly signal: AbortSignal
  /** Added to the message's headers (Knative sends `prefer: reply` to subscribers). */
  readonly extraHeaders?: Readonly<Record<string, string>>
}

export async function postEvent(url: string, message: EncodedMessage, options: AttemptOptions): Promise<SubscriberResponse> {
  const timeout = AbortSignal.timeout(options.timeoutMs)
  const signal = AbortSignal.any([options.signal, timeout])
  try {
    const res = await request(url, { method: 'POST', headers: { ...message.headers, ...options.extraHeaders }, body: message.body ?? '', dispatcher: options.dispatcher, signal })
    const chunks: Buffer[] = []
    let size = 0
    let truncated = false
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (size + chunk.length > options.maxBodyBytes) {
        chunks.push(chunk.subarray(0, options.maxBodyBytes - size))
        size = options.maxBodyBytes
        truncated = true
        res.body.destroy()
        break
      }
      chunks.push(chunk)
      size += chunk.length
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, size), truncated }
  } catch (err) {
    if (options.signal.aborted) throw err
    if (timeout.aborted) throw new AttemptFailure(`${url} did not answer within ${options.timeoutMs}ms (delivery.timeout)`, true, { cause: err })
    const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } }
    const detail = e.cause?.message ?? e.message ?? String(err)
    const code = e.cause?.code ?? e.code
    throw new AttemptFailure(`POST ${url} failed: ${detail}${code !== undefined && !detail.includes(code) ? ` (${code})` : ''}`, false, { cause: err })
  }
}
