/**
 * A refusal: the server stack's answer to a request it will not run. Drain, deadline and admission
 * make them; transports write them (HTTP status + JSON body, gRPC status + trailers). A leaf
 * module, so the roles that refuse and the gate that counts refusals need not import each other.
 */
import type { MeshletError } from '../errors.js'

export interface Refusal {
  readonly ok: false
  /** The HTTP status; gRPC maps it (a `rejected` refusal is always UNAVAILABLE). */
  readonly status: number
  readonly error: MeshletError
  /** Refused before any processing: the client may retry it elsewhere, even a POST. */
  readonly rejected: boolean
  /** Labels the refusal in `meshlet.admission.rejected` and inspect(). */
  readonly reason?: string
  /** Seconds, sent as `retry-after` (HTTP) or `grpc-retry-pushback-ms` (gRPC). */
  readonly retryAfter?: number
}
