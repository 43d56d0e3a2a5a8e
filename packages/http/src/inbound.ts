/**
 * The server stack shared by the node:http, Express and Fastify adapters: drain → deadline and
 * trace extraction → telemetry → app. Outbound calls made while the app handles the request run in
 * its call scope and inherit its deadline, trace context and cancellation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { DEADLINE_HEADER, ErrorCodes, extractTraceContext, LOAD_HEADER, MeshletError, REJECTED_HEADER, type Admission, type CallScope, type Mesh } from '@meshlet/core'

/** The inbound request's scope; its cancellation signal is made only when an outbound call asks. */
export class InboundScope implements CallScope {
  readonly deadline: number
  readonly #res: ServerResponse
  #controller: AbortController | undefined

  constructor(deadline: number, res: ServerResponse) {
    this.deadline = deadline
    this.#res = res
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const ac = (this.#controller = new AbortController())
      const gone = () => {
        if (!this.#res.writableFinished) ac.abort(new MeshletError(ErrorCodes.UPSTREAM, 'The inbound request was cancelled by its client; outbound calls made for it are cancelled too.'))
      }
      if (this.#res.closed) gone()
      else this.#res.once('close', gone)
    }
    return this.#controller.signal
  }
}

/** Writes a refusal as JSON; `rejected` marks it as not processed, so clients may retry elsewhere. */
export function writeRefusal(res: ServerResponse, admission: Extract<Admission, { ok: false }>, closeConnection: boolean): void {
  const body = JSON.stringify({ error: { code: admission.error.code, message: admission.error.message } })
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  if (admission.rejected) headers[REJECTED_HEADER] = '1'
  if (closeConnection) headers.connection = 'close'
  res.writeHead(admission.status, headers).end(body)
}

export interface InboundRequest {
  readonly scope: InboundScope
  readonly trace: ReturnType<typeof extractTraceContext>
}

/**
 * Admits one request: refuses it (and returns undefined) when draining or its deadline is malformed
 * or past; otherwise counts it in flight, sets the load header, records the server metric when the
 * response ends, and returns its scope. `route()` is read at the end (frameworks match late).
 */
export function admitInbound(mesh: Mesh, req: IncomingMessage, res: ServerResponse, route: () => string | undefined): InboundRequest | undefined {
  const gate = mesh.inbound
  const admission = gate.admit(req.headers[DEADLINE_HEADER])
  if (!admission.ok) {
    writeRefusal(res, admission, !gate.accepting)
    return undefined
  }
  gate.enter()
  const t0 = performance.now()
  res.setHeader(LOAD_HEADER, gate.loadReport())
  let done = false
  // A response that never finished (the connection closed first) is not a success: it records the
  // status only if one was sent, and an error.type.
  const finish = (complete: boolean) => {
    if (done) return
    done = true
    gate.leave()
    gate.recordDuration(req.method ?? 'GET', route(), res.headersSent ? res.statusCode : 0, (performance.now() - t0) / 1000, complete ? undefined : 'connection_closed')
  }
  res.once('finish', () => finish(true))
  res.once('close', () => finish(false))
  return { scope: new InboundScope(admission.deadline, res), trace: extractTraceContext(req.headers) }
}
