/** The routed revision's metadata key, and the gRPC status of a route's injected abort. */
import type { status as Status } from '@grpc/grpc-js'
import { grpcStatusForHttp } from '@meshlet/core'

/**
 * Metadata key carrying the revision a route chose, to the server. The picker reads it from calls
 * made without the mesh's interceptor (which carries the revision in the call's context).
 */
export const ROUTE_REVISION_KEY = 'meshlet-revision'

/**
 * HTTP status → gRPC code for a route's injected abort: core's one mapping (`grpcStatusForHttp`,
 * through the status's meshlet code), so a fault answers a gRPC call as the same refusal from a
 * meshlet server would: 400 INVALID_ARGUMENT, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED.
 */
export function statusForHttp(http: number): Status {
  return grpcStatusForHttp(http) as number as Status
}
