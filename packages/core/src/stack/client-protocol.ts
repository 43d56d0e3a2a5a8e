import type { EndpointState } from '../balance/endpoint-state.js'
import type { RequestInfo } from '../routing/route-table.js'
import type { ResponseClassifier } from './response-classifier.js'
import type { Service } from './service.js'

/**
 * What a transport (HTTP via undici, gRPC) tells the core's client stack. The core owns the policy;
 * the transport owns bytes on the wire.
 */
export interface ClientProtocol<Req, Res> {
  /** Stable name, used in metric attributes and stack caches. */
  readonly name: string
  readonly classifier: ResponseClassifier<Req, Res>
  /** Sends one attempt to `ctx.endpoint`, honouring `ctx.signal` and the attempt deadline. */
  readonly endpoint: Service<Req, Res>
  /** May `req` be sent again after this failed result? (Its body is replayable or was never read.) */
  canResend(req: Req, failure: Res | undefined, error: unknown): boolean
  /** Releases a response that will not reach the caller because the call is retried. */
  discard(res: Res): void
  /** The server's requested wait before a retry (Retry-After, grpc-retry-pushback-ms), in ms. */
  retryAfter(res: Res): number | undefined
  /** The request method for metrics (`GET`, or the gRPC method path). */
  method(req: Req): string
  /** The response status for metrics. */
  status(res: Res): number
  /** A server-reported load (utilization 0..1) carried on the response, if any. */
  reportedLoad(res: Res): number | undefined
  /** What routes match on: method, path, query, headers. A protocol without it is not routed. */
  requestInfo?(req: Req): RequestInfo
  /**
   * Sends a fire-and-forget copy of `req` to `endpoint` (route mirroring), discarding the answer;
   * skips requests whose body cannot be read twice. Must never throw or delay the caller.
   */
  mirror?(req: Req, endpoint: EndpointState): void
  /** A response made up by fault injection: `status`, no body, never sent to an endpoint. */
  abortResponse?(req: Req, status: number): Res
}
