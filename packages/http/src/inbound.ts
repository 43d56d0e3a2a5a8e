/**
 * The HTTP side of the core server stack, shared by the node:http, Express and Fastify adapters.
 * An HttpInboundCall supplies what only HTTP knows: request headers, the refusal as a JSON
 * response, the load report as a response header, the metric's method, route and status. The
 * response's `close` event tells the stack the request ended. Each adapter adds only how to run its
 * app and where its route template comes from.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InboundCall, LOAD_HEADER, REJECTED_HEADER, serverStack, type CallerInfo, type InboundGate, type Mesh, type Refusal, type ServerStack } from '@meshlet/core'

const CALL = Symbol('meshlet.inboundCall')
type TrackedResponse = ServerResponse & { [CALL]?: HttpInboundCall }

/** Writes a refusal as JSON; `rejected` marks it as not processed, so clients may retry elsewhere. */
export function writeRefusal(res: ServerResponse, refusal: Refusal, closeConnection: boolean): void {
  const body = JSON.stringify({ error: { code: refusal.error.code, message: refusal.error.message } })
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  if (refusal.rejected) headers[REJECTED_HEADER] = '1'
  if (refusal.retryAfter !== undefined) headers['retry-after'] = refusal.retryAfter
  if (closeConnection) headers.connection = 'close'
  res.writeHead(refusal.status, headers).end(body)
}

/** The mesh's server stack and gate, taken once per adapter. */
export interface HttpServerSide {
  readonly stack: ServerStack
  readonly gate: InboundGate
}

export function httpServerSide(mesh: Mesh): HttpServerSide {
  return { stack: serverStack(mesh.inbound), gate: mesh.inbound }
}

export abstract class HttpInboundCall extends InboundCall {
  readonly side: HttpServerSide
  readonly req: IncomingMessage
  readonly res: ServerResponse

  constructor(side: HttpServerSide, req: IncomingMessage, res: ServerResponse) {
    super()
    this.side = side
    this.req = req
    this.res = res
  }

  /** The route template for metrics (`/orders/:id`), read when the response ended (frameworks match late). */
  abstract route(): string | undefined

  header(name: string): string | string[] | undefined {
    return this.req.headers[name]
  }

  headerNames(): string[] {
    return Object.keys(this.req.headers)
  }

  get path(): string {
    return this.req.url ?? '/'
  }

  caller(): CallerInfo {
    return { headers: this.req.headers, remoteAddress: this.req.socket.remoteAddress }
  }

  /** A drain refusal also closes the connection, so the client reconnects to another instance. */
  writeRefusal(refusal: Refusal): void {
    writeRefusal(this.res, refusal, refusal.reason === 'draining')
  }

  writeLoad(report: string): void {
    this.res.setHeader(LOAD_HEADER, report)
  }

  /** A response that never finished is no success: its status only if one was sent, and an error.type. */
  recordDuration(seconds: number, complete: boolean): void {
    const res = this.res
    this.side.gate.recordDuration(this.req.method ?? 'GET', this.route(), res.headersSent ? res.statusCode : 0, seconds, complete ? undefined : 'connection_closed')
  }
}

/** Runs `call` through the server stack; the response's `close` ends it (complete when the response finished). */
export function serveInbound(call: HttpInboundCall): void {
  const res = call.res as TrackedResponse
  res[CALL] = call
  res.on('close', onResponseClose)
  call.side.stack.accept(call)
}

function onResponseClose(this: TrackedResponse): void {
  const call = this[CALL]
  if (call !== undefined) call.side.stack.end(call, this.writableFinished)
}
