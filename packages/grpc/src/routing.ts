/** What the interceptor tells the picker through metadata, and HTTP → gRPC statuses for route faults. */
import { status as Status } from '@grpc/grpc-js'

/**
 * Metadata key carrying the revision a route chose, from the client interceptor to the picker
 * (grpc-js gives a picker the call's metadata and nothing else); it also tells the server.
 */
export const ROUTE_REVISION_KEY = 'meshlet-revision'

/**
 * Metadata key marking a streaming call for the picker, which removes it before the call goes out:
 * a stream's lifetime is no latency sample (it would make its endpoint look slow for minutes).
 */
export const STREAMING_KEY = 'meshlet-streaming'

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
