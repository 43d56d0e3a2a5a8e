/**
 * One POST to the broker ingress of the control endpoint: `POST <control>/v1/ingress/<namespace>/<broker>`
 * with the mesh's join token. Resolves when the broker answered 2xx (202: the events are durable).
 *
 * Every failure is a MeshletError whose `retryable` says whether sending the same body again may
 * succeed: no answer, a timeout, 5xx, 408 and 429 are (code MESHLET_ERR_BROKER_UNAVAILABLE); other
 * answers carry the ingress's own code (EVENT_INVALID for 400, EVENT_TOO_LARGE for 413, ...) and
 * are not.
 */
import { codeForHttpStatus, errorInfo, ErrorCodes, MeshletError, type ErrorCode } from '@meshlet/core'
import { Agent, request } from 'undici'

export interface IngressMessage {
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array | string
}

export interface IngressClientOptions {
  /** The control endpoint, `http://127.0.0.1:7070`. */
  url: string
  token: string | undefined
  namespace: string
  /** One attempt's time for an answer (ms). */
  timeout: number
}

const MAX_ERROR_BODY = 16 * 1024

export class IngressClient {
  readonly url: string
  readonly #o: IngressClientOptions
  readonly #agent = new Agent({ keepAliveTimeout: 4_000, connections: 8 })

  constructor(options: IngressClientOptions) {
    this.#o = options
    this.url = options.url.replace(/\/+$/, '')
  }

  /** The ingress URL of one broker. */
  brokerUrl(broker: string): string {
    return `${this.url}/v1/ingress/${encodeURIComponent(this.#o.namespace)}/${encodeURIComponent(broker)}`
  }

  async send(broker: string, message: IngressMessage, signal?: AbortSignal): Promise<void> {
    const url = this.brokerUrl(broker)
    const timeout = AbortSignal.timeout(this.#o.timeout)
    const headers: Record<string, string> = { ...message.headers }
    if (this.#o.token !== undefined) headers.authorization = `Bearer ${this.#o.token}`
    let status: number
    let text: string
    try {
      const res = await request(url, { method: 'POST', headers, body: message.body, dispatcher: this.#agent, signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) })
      status = res.statusCode
      if (status >= 200 && status < 300) {
        await res.body.dump()
        return
      }
      text = await readLimited(res.body as AsyncIterable<Buffer>)
    } catch (err) {
      if (signal?.aborted === true) throw new MeshletError(ErrorCodes.CANCELLED, `Publishing to broker "${broker}" was cancelled.`, { cause: err, retryable: false })
      const why = timeout.aborted ? `no answer within ${this.#o.timeout}ms` : describeNetworkError(err)
      throw unavailable(broker, url, why, err)
    }
    if (status >= 500 || status === 408 || status === 429) throw unavailable(broker, url, `the ingress answered ${status}${errorMessage(text) === undefined ? '' : `: ${errorMessage(text)}`}`, undefined, status)
    const body = parseError(text)
    const code: ErrorCode = body?.code !== undefined && errorInfo(body.code) !== undefined ? (body.code as ErrorCode) : (codeForHttpStatus(status) ?? ErrorCodes.BAD_REQUEST)
    throw new MeshletError(code, `Broker "${broker}" refused the event (${status}): ${body?.message ?? text.slice(0, 300)}`, { retryable: false, details: { broker, url, status } })
  }

  close(): Promise<void> {
    return this.#agent.close()
  }
}

function unavailable(broker: string, url: string, why: string, cause: unknown, status?: number): MeshletError {
  return new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `Broker "${broker}" is unavailable at ${url} (${why}); the event was not stored.`, { retryable: true, cause, details: { broker, url, ...(status === undefined ? {} : { status }) } })
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  return e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(err)
}

async function readLimited(body: AsyncIterable<Buffer> & { destroy?: () => void }): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    chunks.push(chunk)
    size += chunk.length
    if (size >= MAX_ERROR_BODY) {
      body.destroy?.()
      break
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8')
}

function parseError(text: string): { code?: string; message?: string } | undefined {
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error
    return typeof error === 'object' && error !== null ? (error as { code?: string; message?: string }) : undefined
  } catch {
    return undefined
  }
}

function errorMessage(text: string): string | undefined {
  return parseError(text)?.message
}
