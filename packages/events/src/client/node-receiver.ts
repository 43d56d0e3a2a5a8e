/**
 * The receivers as a node:http request listener that is also Express middleware:
 * `(req, res, next?) => void`. It answers requests under `/_meshlet/events/` only and passes every
 * other one to `next()` (404 without a `next`). Behind `meshlet(mesh)` or `meshletServer` it runs
 * inside the mesh's server stack like any route (deadline, admission, telemetry, drain).
 *
 * The body is read here, up to the event size limit (413 past it). A body that an Express body
 * parser has read already is taken from `req.body` (a Buffer or string as is; parsed JSON is
 * serialized again, which keeps its meaning but not its bytes): mount the receivers before body
 * parsers to get the delivery exactly as sent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { DeliveryAnswer } from './trigger-receiver.js'

export const RECEIVER_PREFIX = '/_meshlet/events/'

export type NodeRequestHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/** What the handler needs from `events(mesh)`: find a trigger and run a delivery through it. */
export interface ReceiverHost {
  readonly maxEventSize: number
  /** The answer to a POST at `/_meshlet/events/<name>` (`name` percent-decoded). */
  deliver(name: string, delivery: { headers: IncomingMessage['headers']; body: Uint8Array }, signal: AbortSignal): Promise<DeliveryAnswer>
}

export function nodeRequestHandler(host: ReceiverHost): NodeRequestHandler {
  return (req, res, next) => {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    if (!path.startsWith(RECEIVER_PREFIX)) {
      if (next !== undefined) return next()
      return void writeAnswer(res, { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'not found' })
    }
    if (req.method !== 'POST') return void writeAnswer(res, { status: 405, headers: { allow: 'POST', 'content-type': 'text/plain; charset=utf-8' }, body: 'deliveries are POSTed' })
    // The broker gave up (closed the request) before the answer: tell the handler through its signal.
    const ac = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) ac.abort()
    })
    void readBody(req, host.maxEventSize)
      .then((body) => (body === undefined ? tooLarge(host.maxEventSize) : host.deliver(decodeName(path.slice(RECEIVER_PREFIX.length)), { headers: req.headers, body }, ac.signal)))
      .then(
        (answer) => writeAnswer(res, answer),
        () => res.destroy(),
      )
  }
}

/** A name that does not decode is looked up as sent (and found by no trigger: 404). */
function decodeName(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

/** Writes `answer` unless the response is gone already. */
export function writeAnswer(res: ServerResponse, answer: DeliveryAnswer): void {
  if (res.headersSent || res.destroyed) return
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body
  res.writeHead(answer.status, { ...answer.headers, 'content-length': String(body.length) })
  res.end(body)
}

/** The body, or undefined when it is over `limit` (then the rest is not read). */
async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array | undefined> {
  const parsed = (req as { body?: unknown }).body
  if (req.readableEnded || (req as { _body?: unknown })._body === true) {
    if (Buffer.isBuffer(parsed) || parsed instanceof Uint8Array) return parsed
    if (typeof parsed === 'string') return Buffer.from(parsed)
    if (parsed !== undefined) return Buffer.from(JSON.stringify(parsed))
    return new Uint8Array(0)
  }
  // Binary mode counts ce- headers into the event's size too; the codec checks that exactly.
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) return undefined
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}

function tooLarge(limit: number): DeliveryAnswer {
  return {
    status: 413,
    headers: { 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ error: { code: 'MESHLET_ERR_EVENT_TOO_LARGE', message: `The delivery's body is over the event size limit of ${limit} bytes; raise maxEventSize on events(mesh) (and the broker).` } }),
  }
}
