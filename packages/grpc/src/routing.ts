/** The routed revision's metadata key, and HTTP → gRPC statuses for route faults. */
import { status as Status } from '@grpc/grpc-js'

/**
 * Metadata key carrying the revision a route chose, to the server. The picker reads it from calls
 * made without the mesh's interceptor (which carries the revision in the call's context).
 */
export const ROUTE_REVISION_KEY = 'meshlet-revision'

/** HTTP status → gRPC code, as grpc/grpc doc/http-grpc-status-mapping.md maps them. */
export function statusForHttp(http: number): Status {
  switch (http) {
    case 400:
      return Status.INTERNAL
    case 401:
      return Status.UNAUTHENTICATED
    case 403:
      return Status.PERMISSION_DENIED
    case 404:
      return Status.UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return Status.UNAVAILABLE
    default:
      return http >= 200 && http < 300 ? Status.OK : Status.UNKNOWN
  }
}
