/** Reading bodies and writing JSON answers, with the limits a public endpoint needs. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ControlErrorCodes } from '@meshlet/core'
import { ControlError, badRequest } from '../errors.js'

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  res.end(text)
}

export function sendError(res: ServerResponse, err: ControlError): void {
  if (res.headersSent) return void res.destroy()
  const body = { error: { code: err.code, message: err.message, ...(err.issues ? { issues: err.issues } : {}) } }
  // After refusing a body we did not read, close the connection rather than read the rest of it.
  sendJson(res, err.status, body, err.status === 413 ? { connection: 'close' } : {})
}

/** `application/json` or a `+json` type, parameters allowed (`application/merge-patch+json; charset=utf-8`). */
const JSON_MEDIA_TYPE = /^\s*application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i

/**
 * Reads a JSON body of at most `limit` bytes. Undefined for an empty body. A body declared as
 * anything but JSON is refused with 415 before it is read (as kube-apiserver does); a body with no
 * Content-Type is read as JSON.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type']
  if (type !== undefined && !JSON_MEDIA_TYPE.test(type)) {
    req.resume()
    throw new ControlError(ControlErrorCodes.UNSUPPORTED_MEDIA_TYPE, `the body is ${JSON.stringify(type.slice(0, 80))}; send it as application/json (the meshlet CLI converts YAML for you)`)
  }
  const tooLarge = () => new ControlError(ControlErrorCodes.TOO_LARGE, `the request body is over the ${limit}-byte limit; split the change into several resources`)
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) {
    req.resume()
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      throw tooLarge()
    }
    chunks.push(chunk)
  }
  if (size === 0) return undefined
  const text = Buffer.concat(chunks).toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw badRequest(`the body is not valid JSON (${(err as Error).message.slice(0, 200)}); send JSON (the meshlet CLI converts YAML for you)`)
  }
  const depth = depthOf(value)
  if (depth > MAX_DEPTH) throw badRequest(`the body nests ${depth > 1000 ? 'over 1000' : depth} levels deep; at most ${MAX_DEPTH} are allowed`)
  return value
}

const MAX_DEPTH = 32

/** Nesting depth of a JSON value, counted without recursion (so hostile input cannot overflow the stack). */
function depthOf(value: unknown): number {
  let max = 0
  const stack: [unknown, number][] = [[value, 1]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    if (d > max) max = d
    if (max > 1000) return max
    for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, d + 1])
  }
  return max
}
