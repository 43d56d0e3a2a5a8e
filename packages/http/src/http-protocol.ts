/**
 * The undici transport for the core's client stack: the HTTP response classifier, and the terminal
 * service that sends one attempt to the chosen endpoint's own undici Pool (no Agent lookup, no URL
 * parsing on the hot path).
 */
import { Pool } from 'undici'
import { attemptExpired, Classification, DEADLINE_HEADER, isMeshletError, parseLoadHeader, type CallContext, type ClientProtocol, type EndpointState, type MeshMetrics, type ResponseClassifier, ErrorCodes, LOAD_HEADER, MIRROR_HEADER, REJECTED_HEADER } from '@meshlet/core'
import { HttpAttempt, withHeaders, type HttpCall } from './http-call.js'

/** Errors raised before a request reached the server: always safe to send elsewhere. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL'])
/** Errors after the request may have reached the server: retried only when idempotent. */
const SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT', 'UND_ERR_REQ_RETRY'])

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } }
  return e?.code ?? e?.cause?.code
}

export const httpClassifier: ResponseClassifier<HttpCall, HttpAttempt> = {
  response(_call, ctx, res) {
    const s = res.statusCode
    if (s < 500 && s !== 429) return Classification.Success
    if (s === 503 && res.headers[REJECTED_HEADER] === '1') return Classification.RetryableFailure
    if (s === 502 || s === 503 || s === 504 || s === 429) return ctx.idempotent ? Classification.RetryableFailure : Classification.Failure
    return Classification.Failure
  },
  error(call, ctx, err) {
    if (call.aborted) return Classification.Ignorable
    if (isMeshletError(err)) {
      if (err.rejected) return Classification.RetryableFailure
      if (err.code === ErrorCodes.DEADLINE) return err.retryable && ctx.idempotent ? Classification.RetryableFailure : Classification.Failure
      return err.code === ErrorCodes.NO_ENDPOINT || err.code === ErrorCodes.BREAKER_OPEN ? Classification.Ignorable : Classification.Failure
    }
    const code = errorCode(err)
    if (code !== undefined && CONNECT_ERRORS.has(code)) return Classification.RetryableFailure
    if (code !== undefined && SOCKET_ERRORS.has(code)) return ctx.idempotent ? Classification.RetryableFailure : Classification.Failure
    return Classification.Failure
  },
  refused(_call, _ctx, res) {
    return res.headers[REJECTED_HEADER] === '1' && (res.statusCode === 503 || res.statusCode === 429)
  },
}

/** Retry-After as delay-seconds or an HTTP date, in ms. */
function retryAfter(res: HttpAttempt): number | undefined {
  const v = res.headers['retry-after']
  if (typeof v !== 'string' || v.length > 64) return undefined
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

export interface HttpProtocolOptions {
  /** Where `http.client.request.duration` is recorded: the mesh's metrics. */
  metrics: MeshMetrics
  /** Options for each endpoint's undici Pool. */
  pool?: Pool.Options
}

export function httpProtocol(options: HttpProtocolOptions): ClientProtocol<HttpCall, HttpAttempt> {
  const poolOptions = options.pool ?? {}
  const metrics = options.metrics
  const attributes = (call: HttpCall, ctx: CallContext, status: number, errorType: string | undefined) =>
    metrics.attributes(`c:${ctx.service}:${call.method}:${status}:${errorType ?? ''}`, () => ({
      'http.request.method': call.method,
      'server.address': ctx.service,
      ...(status ? { 'http.response.status_code': status } : {}),
      ...(errorType ? { 'error.type': errorType } : {}),
    }))
  const poolOf = (e: EndpointState) => e.resource('undici', () => new Pool(e.url, poolOptions))
  const endpoint = (call: HttpCall, ctx: CallContext): Promise<HttpAttempt> =>
    new Promise((resolve, reject) => {
      if (call.aborted) return reject(call.reason)
      const e = ctx.endpoint!
      const pool = poolOf(e)
      const attempt = new HttpAttempt(call, resolve, reject)
      const budget = Math.min(ctx.deadline, ctx.attemptDeadline) - Date.now()
      if (budget <= 0) return reject(attemptExpired(ctx))
      if (budget !== Infinity) attempt.armTimer(budget, () => attemptExpired(ctx))
      if (ctx.signal !== undefined) attempt.follow(ctx.signal)
      pool.dispatch(ctx.attempt === 1 ? call.opts : call.retryOpts(ctx.attempt), attempt)
    })

  return {
    name: 'http',
    classifier: httpClassifier,
    endpoint,
    canResend: (call) => call.bodyResendable(),
    discard: (res) => res.discard(),
    retryAfter,
    setHeader: (call, name, value) => call.setHeader(name, value),
    writeDeadline: (call, deadline) => call.setHeader(DEADLINE_HEADER, String(deadline)),
    recordDuration: (call, ctx, res, err, seconds) => {
      const attrs =
        res !== undefined
          ? attributes(call, ctx, res.statusCode, res.statusCode >= 500 ? String(res.statusCode) : undefined)
          : attributes(call, ctx, 0, isMeshletError(err) ? err.code : ((err as { code?: string })?.code ?? 'Error'))
      metrics.clientDuration.record(seconds, attrs)
    },
    reportedLoad: (res) => parseLoadHeader(res.headers[LOAD_HEADER]),
    requestInfo: (call) => {
      const path = call.opts.path
      const q = path.indexOf('?')
      return { method: call.method, path: q < 0 ? path : path.slice(0, q), query: q < 0 ? '' : path.slice(q + 1), header: (name) => call.header(name) }
    },
    abortResponse: (call, status) => HttpAttempt.synthetic(call, status),
    mirror: (call, e) => {
      // Only a body that can be read twice is copied; a stream belongs to the real request.
      const body = call.opts.body
      if (!(body == null || typeof body === 'string' || body instanceof Uint8Array)) return
      const marked = withHeaders(call.opts.headers, { [MIRROR_HEADER]: '1' })
      poolOf(e)
        .request({ path: call.opts.path, method: call.opts.method, headers: marked as never, body: body ?? null })
        .then(
          (r) => r.body.dump(),
          () => undefined, // the shadow's failures are its own
        )
    },
  }
}
