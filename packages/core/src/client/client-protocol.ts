/**
 * What a transport (HTTP via undici, gRPC via grpc-js) supplies to the one client stack: send one
 * attempt, read and write headers or metadata, classify the outcome, cancel. The core owns every
 * policy; the transport owns bytes on the wire.
 */
import type { EndpointState } from '../balance/endpoint-state.js'
import type { RequestInfo } from '../routing/route-table.js'
import type { CallContext, ResponseClassifier, Service } from './call-context.js'

export interface ClientProtocol<Req, Res> {
  /** Stable name, used in stack caches and diagnostics. */
  readonly name: string
  readonly classifier: ResponseClassifier<Req, Res>
  /**
   * Sends one attempt to `ctx.endpoint` and resolves with its response once the response headers
   * are in (or the whole response, where the transport holds small ones). Must honour `ctx.signal`
   * and fail the attempt with `attemptExpired(ctx)` once `min(ctx.deadline, ctx.attemptDeadline)`
   * passes before the response headers; must not settle twice.
   */
  readonly endpoint: Service<Req, Res>
  /** May `req` be sent again after this failed result? (Its body is replayable or was never read.) */
  canResend(req: Req, failure: Res | undefined, error: unknown): boolean
  /** Releases a response that will not reach the caller because the call is retried. */
  discard(res: Res): void
  /** The server's requested wait before a retry (Retry-After, grpc-retry-pushback-ms), in ms. */
  retryAfter(res: Res): number | undefined
  /** A server-reported load (utilization 0..1) carried on the response, if any. */
  reportedLoad(res: Res): number | undefined
  /** Sets a request header (HTTP) or metadata entry (gRPC); called before the first attempt only. */
  setHeader(req: Req, name: string, value: string): void
  /**
   * Carries the call's deadline to the server the transport's way. HTTP writes `meshlet-deadline`;
   * gRPC leaves this out: each attempt sends `grpc-timeout` from `ctx.deadline`.
   */
  writeDeadline?(req: Req, deadline: number): void
  /** Records the call's duration metric (`http.client.request.duration`, `rpc.client.call.duration`). */
  recordDuration(req: Req, ctx: CallContext, res: Res | undefined, error: unknown, seconds: number): void
  /** What routes match on: method, path, query, headers. A protocol without it is not routed. */
  requestInfo?(req: Req): RequestInfo
  /**
   * Sends a fire-and-forget copy of `req` to `endpoint` (route mirroring), discarding the answer;
   * skips requests whose body cannot be read twice. Must never throw or delay the caller.
   */
  mirror?(req: Req, endpoint: EndpointState): void
  /** A response made up by fault injection: `status` (HTTP), no body, never sent to an endpoint. */
  abortResponse?(req: Req, status: number): Res
  /**
   * The endpoints this transport can use for `req` right now (gRPC: connected subchannels); the pick
   * prefers them while any is ready. Undefined: every endpoint is as good as another.
   */
  usable?(req: Req): ((e: EndpointState) => boolean) | undefined
  /**
   * For a response still streaming when its attempt resolved (a gRPC stream after its headers):
   * calls `ended` once, later, with the final outcome, and returns true. Returns false when `res`
   * is already complete. Outcome-keeping roles (pick, metrics) then record the end, not the start.
   */
  whenEnded?(res: Res, ended: (res: Res) => void): boolean
}
