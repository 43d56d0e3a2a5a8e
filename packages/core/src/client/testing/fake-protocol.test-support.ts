/**
 * A ClientProtocol for unit tests: its terminal is a mock service, its classifier follows HTTP's
 * rules by status number (as @meshlet/http's does), and it records every header, deadline, duration
 * and mirror the stack hands it. Test-only: not exported from the package, not shipped.
 */
import type { EndpointState } from '../../balance/endpoint-state.js'
import { ErrorCodes, isMeshletError } from '../../errors.js'
import { Classification } from '../../stack/response-classifier.js'
import type { CallContext, ResponseClassifier } from '../call-context.js'
import type { ClientProtocol } from '../client-protocol.js'
import { mockService, type MockHandle } from './mock-service.test-support.js'

export const REJECTED = 'meshlet-rejected'
export const LOAD = 'meshlet-load'

/** A request: what routes match on, headers the stack writes, whether its body can be sent again. */
export interface FakeCall {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly headers: Record<string, string>
  readonly replayable: boolean
  /** The caller gave up (as `call.aborted` in @meshlet/http): its errors say nothing of the endpoint. */
  aborted: boolean
}

export function fakeCall(init: { method?: string; path?: string; headers?: Record<string, string>; replayable?: boolean } = {}): FakeCall {
  const [path = '/', query = ''] = (init.path ?? '/').split('?')
  return { method: init.method ?? 'GET', path, query, headers: { ...init.headers }, replayable: init.replayable ?? true, aborted: false }
}

/** A response; `streaming` ones end later, through `end()` (see the protocol's `whenEnded`). */
export interface FakeResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly streaming: boolean
  /** Made up by fault injection (`abortResponse`), never sent. */
  readonly synthetic: boolean
  discarded: boolean
  /** Ends a streaming response; `final` (default: this response) is the outcome the stack records. */
  end(final?: FakeResponse): void
}

export function response(status: number, headers: Record<string, string> = {}, opts: { streaming?: boolean; synthetic?: boolean } = {}): FakeResponse {
  let ended: ((final: FakeResponse) => void) | undefined
  const res: FakeResponse & { onEnd(fn: (final: FakeResponse) => void): void } = {
    status,
    headers,
    streaming: opts.streaming ?? false,
    synthetic: opts.synthetic ?? false,
    discarded: false,
    end: (final) => {
      if (ended === undefined) throw new Error('fakeProtocol: end() on a response no one waits for')
      const fn = ended
      ended = undefined
      fn(final ?? res)
    },
    onEnd: (fn) => {
      ended = fn
    },
  }
  return res
}

/** A transport error with a code, as undici and node:net raise them. */
export function transportError(code: string, message = `connect ${code} 10.0.0.1:80`): Error & { code: string } {
  return Object.assign(new Error(message), { code })
}

const { Success, RetryableFailure, Failure, Ignorable } = Classification

/** How HTTP reads an error code: always safe to resend (never reached the server), or only when idempotent. */
const ERROR_CODES: Readonly<Record<string, 'always' | 'idempotent'>> = { ECONNREFUSED: 'always', ENOTFOUND: 'always', EHOSTUNREACH: 'always', ECONNRESET: 'idempotent', EPIPE: 'idempotent', ETIMEDOUT: 'idempotent' }
/** Statuses retried when the call is idempotent (and a refused 503 always). */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504])
/** MeshletError codes that say nothing of the endpoint. */
const NOT_THE_ENDPOINT: ReadonlySet<string> = new Set([ErrorCodes.NO_ENDPOINT, ErrorCodes.BREAKER_OPEN])

const ifIdempotent = (ctx: CallContext) => (ctx.idempotent ? RetryableFailure : Failure)

/** HTTP's rules, by status number and error code (the same verdicts as httpClassifier in @meshlet/http). */
export const fakeClassifier: ResponseClassifier<FakeCall, FakeResponse> = {
  response: (call, ctx, res) => {
    if (fakeClassifier.refused!(call, ctx, res) && res.status === 503) return RetryableFailure
    if (RETRYABLE_STATUSES.has(res.status)) return ifIdempotent(ctx)
    return res.status >= 500 ? Failure : Success
  },
  error: (call, ctx, err) => {
    if (call.aborted) return Ignorable
    if (!isMeshletError(err)) {
      const kind = ERROR_CODES[(err as { code?: string })?.code ?? '']
      return kind === 'always' ? RetryableFailure : kind === 'idempotent' ? ifIdempotent(ctx) : Failure
    }
    if (err.rejected) return RetryableFailure
    if (NOT_THE_ENDPOINT.has(err.code)) return Ignorable
    return err.code === ErrorCodes.DEADLINE && err.retryable ? ifIdempotent(ctx) : Failure
  },
  refused: (_call, _ctx, res) => res.headers[REJECTED] === '1' && (res.status === 503 || res.status === 429),
}

export interface DurationRecord {
  readonly call: FakeCall
  readonly res: FakeResponse | undefined
  readonly error: unknown
  readonly seconds: number
  readonly attempt: number
}

/** What the stack handed the protocol, in order. */
export interface ProtocolLog {
  readonly headers: { call: FakeCall; name: string; value: string }[]
  readonly deadlines: { call: FakeCall; deadline: number }[]
  readonly durations: DurationRecord[]
  readonly mirrors: { call: FakeCall; endpoint: EndpointState }[]
  readonly discarded: FakeResponse[]
}

export interface FakeProtocolOptions {
  /** The transport's own connectivity (gRPC subchannels): steers picks. */
  usable?: (call: FakeCall) => ((e: EndpointState) => boolean) | undefined
  /** Give the protocol `whenEnded`: a response made with `streaming: true` ends at its `end()`. */
  streaming?: boolean
  /** Leave out these optional members (a transport without them). */
  without?: readonly ('writeDeadline' | 'mirror' | 'requestInfo' | 'abortResponse')[]
}

export type FakeProtocol = ClientProtocol<FakeCall, FakeResponse>

export function fakeProtocol(opts: FakeProtocolOptions = {}): { protocol: FakeProtocol; handle: MockHandle<FakeCall, FakeResponse>; log: ProtocolLog } {
  const { service, handle } = mockService<FakeCall, FakeResponse>()
  const log: ProtocolLog = { headers: [], deadlines: [], durations: [], mirrors: [], discarded: [] }
  const without = new Set(opts.without ?? [])
  const protocol: FakeProtocol = {
    name: 'fake',
    classifier: fakeClassifier,
    endpoint: service,
    canResend: (call) => call.replayable,
    discard: (res) => {
      res.discarded = true
      log.discarded.push(res)
    },
    retryAfter: (res) => (res.headers['retry-after'] === undefined ? undefined : Number(res.headers['retry-after']) * 1000),
    reportedLoad: (res) => (res.headers[LOAD] === undefined ? undefined : Number(res.headers[LOAD])),
    setHeader: (call, name, value) => {
      call.headers[name] = value
      log.headers.push({ call, name, value })
    },
    recordDuration: (call: FakeCall, ctx: CallContext, res, error, seconds) => log.durations.push({ call, res, error, seconds, attempt: ctx.attempt }),
  }
  if (!without.has('writeDeadline'))
    protocol.writeDeadline = (call, deadline) => {
      call.headers['meshlet-deadline'] = String(deadline)
      log.deadlines.push({ call, deadline })
    }
  if (!without.has('requestInfo')) protocol.requestInfo = (call) => ({ method: call.method, path: call.path, query: call.query, header: (name) => call.headers[name] })
  if (!without.has('abortResponse')) protocol.abortResponse = (_call, status) => response(status, {}, { synthetic: true })
  if (!without.has('mirror')) protocol.mirror = (call, endpoint) => void log.mirrors.push({ call, endpoint })
  if (opts.usable !== undefined) protocol.usable = opts.usable
  if (opts.streaming === true)
    protocol.whenEnded = (res, ended) => {
      if (!res.streaming) return false
      ;(res as FakeResponse & { onEnd(fn: (final: FakeResponse) => void): void }).onEnd(ended)
      return true
    }
  return { protocol, handle, log }
}
