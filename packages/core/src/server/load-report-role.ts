/**
 * Role `load-report`, innermost. Reads the gate's load report (event-loop utilization, in flight,
 * queue; refreshed by a sampler, so reading costs nothing). Changes nothing on the call; hands the
 * value to the transport (`writeLoad`: a response header for HTTP, trailing metadata for gRPC),
 * which the client's balancer reads. Never refuses.
 */
import type { ServerRole } from './server-role.js'

export interface LoadSource {
  /** The `meshlet-load` value now. */
  loadReport(): string
}

export function loadReportRole(source: LoadSource): ServerRole {
  return {
    name: 'load-report',
    arrive(call) {
      call.writeLoad(source.loadReport())
      return undefined
    },
  }
}
