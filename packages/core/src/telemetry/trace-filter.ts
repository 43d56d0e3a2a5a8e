/**
 * Role `trace`: writes the active trace context (traceparent, baggage, ... through the app's
 * OpenTelemetry propagator) into the request's headers or metadata. Left out when
 * @opentelemetry/api is not installed.
 *
 * Reads: the active OTel context (the inbound request's, through AsyncLocalStorage). Changes: the
 * request's headers, once, before the first attempt. Guarantees: nothing else.
 */
import type { ClientProtocol } from '../client/client-protocol.js'
import type { Filter } from '../client/call-context.js'
import { injectTraceContext, loadOtel } from './otel.js'

export function traceFilter<Req, Res>(protocol: Pick<ClientProtocol<Req, Res>, 'setHeader'>): Filter<Req, Res> | undefined {
  if (loadOtel() === undefined) return undefined
  const setter = { set: (req: Req, key: string, value: string) => protocol.setHeader(req, key, value) }
  return (req, ctx, next) => {
    injectTraceContext(req, setter)
    return next(req, ctx)
  }
}
