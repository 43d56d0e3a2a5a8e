/**
 * The server stack shared by the node:http, Express and Fastify adapters: drain → deadline and
 * trace extraction → admission (when configured) → telemetry → app. Outbound calls made while the
 * app handles the request run in its call scope and inherit its deadline, trace context and
 * cancellation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { DEADLINE_HEADER, ErrorCodes, extractTraceContext, LOAD_HEADER, MeshletError, REJECTED_HEADER, type Admission, type AdmissionController, type CallScope, type InboundGate, type Mesh } from '@meshlet/core'

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
  if (admission.retryAfter !== undefined) headers['retry-after'] = admission.retryAfter
  if (closeConnection) headers.connection = 'close'
  res.writeHead(admission.status, headers).end(body)
}

export interface InboundRequest {
  readonly scope: InboundScope
  readonly trace: ReturnType<typeof extractTraceContext>
}

/**
 * Admits one request and calls `run` with its scope, now or, when it waited in the admission queue,
 * later; or refuses it (503, 429, 504, 400 as JSON), calls `refused` and never `run`. Refused: when
 * draining, its deadline is malformed or past, or admission control says no. An admitted request is
 * counted in flight, gets the load header, and its server metric is recorded when the response
 * ends. `route()` is read at the end (frameworks match late).
 */
export function admitInbound(mesh: Mesh, req: IncomingMessage, res: ServerResponse, route: () => string | undefined, run: (inbound: InboundRequest) => void, refused?: () => void): void {
  const gate = mesh.inbound
  const admission = gate.admit(req.headers[DEADLINE_HEADER])
  if (!admission.ok) {
    refused?.()
    writeRefusal(res, admission, !gate.accepting)
    return
  }
  const control = gate.admission
  if (control === undefined) return run(begin(gate, undefined, req, res, route, admission.deadline))
  let gone = false
  const entry = control.acquire(req.url ?? '/', control.wantsCaller ? { headers: req.headers, remoteAddress: req.socket.remoteAddress } : undefined, admission.deadline, {
    start: (permit) => {
      // The client left while the request waited: give the permit straight back.
      if (gone) return permit ? control.release() : undefined
      run(begin(gate, permit ? control : undefined, req, res, route, admission.deadline))
    },
    refuse: (refusal) => {
      if (gone) return
      refused?.()
      writeRefusal(res, refusal, !gate.accepting)
    },
  })
  if (entry !== undefined) {
    res.once('close', () => {
      gone = true
      control.cancel(entry)
    })
  }
}

/** Counts an admitted request in flight until its response ends; `permit`: the controller to release it to. */
function begin(gate: InboundGate, permit: AdmissionController | undefined, req: IncomingMessage, res: ServerResponse, route: () => string | undefined, deadline: number): InboundRequest {
  gate.enter()
  const t0 = performance.now()
  res.setHeader(LOAD_HEADER, gate.loadReport())
  let done = false
  // A response that never finished (the connection closed first) is not a success: it records the
  // status only if one was sent, and an error.type.
  const finish = (complete: boolean) => {
    if (done) return
    done = true
    const ms = performance.now() - t0
    gate.leave()
    permit?.release(ms)
    gate.recordDuration(req.method ?? 'GET', route(), res.headersSent ? res.statusCode : 0, ms / 1000, complete ? undefined : 'connection_closed')
  }
  res.once('finish', () => finish(true))
  res.once('close', () => finish(false))
  return { scope: new InboundScope(deadline, res), trace: extractTraceContext(req.headers) }
}
