/**
 * Role `trace`. Reads the trace context from the call's headers or metadata with the app's
 * OpenTelemetry propagator. Sets `call.trace`, which `runInScope` makes active around app code, so
 * the app's spans and outbound calls continue the caller's trace. Never refuses; without
 * `@opentelemetry/api` it reads nothing.
 */
import type { TextMapGetter } from '@opentelemetry/api'
import { extractTraceContext } from '../telemetry/otel.js'
import type { InboundCall } from './inbound-call.js'
import type { ServerRole } from './server-role.js'

/** Reads a call's headers through its transport, whatever the transport. */
const callGetter: TextMapGetter<InboundCall> = {
  keys: (call) => call.headerNames(),
  get: (call, key) => call.header(key),
}

export function traceRole(): ServerRole {
  return {
    name: 'trace',
    arrive(call) {
      call.trace = extractTraceContext(call, callGetter)
      return undefined
    },
  }
}
