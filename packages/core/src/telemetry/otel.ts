/**
 * @opentelemetry/api is an optional peer dependency: when the app has it, meshlet records metrics
 * and propagates trace context through it; when it does not, every instrument is a no-op.
 */
import { createRequire } from 'node:module'
import type * as otel from '@opentelemetry/api'

export type OtelApi = typeof otel

let cached: OtelApi | null | undefined

export function loadOtel(): OtelApi | undefined {
  if (cached === undefined) {
    try {
      cached = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi
    } catch {
      cached = null
    }
  }
  return cached ?? undefined
}

/**
 * Writes the active trace context (traceparent, baggage, ...) into `carrier` with the app's
 * propagator; `setter` for carriers other than a plain record (gRPC Metadata).
 */
export function injectTraceContext(carrier: Record<string, string>): void
export function injectTraceContext<C>(carrier: C, setter: otel.TextMapSetter<C>): void
export function injectTraceContext<C>(carrier: C, setter?: otel.TextMapSetter<C>): void {
  const api = loadOtel()
  if (api !== undefined) api.propagation.inject(api.context.active(), carrier, setter)
}

/**
 * Reads trace context from inbound headers; returns an OTel Context, or undefined without OTel.
 * `getter` for carriers other than a record of headers (gRPC Metadata).
 */
export function extractTraceContext(headers: Record<string, string | string[] | undefined>): otel.Context | undefined
export function extractTraceContext<C>(carrier: C, getter: otel.TextMapGetter<C>): otel.Context | undefined
export function extractTraceContext<C>(carrier: C, getter?: otel.TextMapGetter<C>): otel.Context | undefined {
  const api = loadOtel()
  if (api === undefined) return undefined
  return api.propagation.extract(api.context.active(), carrier, getter ?? (headerGetter as unknown as otel.TextMapGetter<C>))
}

const headerGetter: otel.TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (c) => Object.keys(c),
  get: (c, key) => c[key],
}

/** Runs `fn` in the given OTel context (when there is one). */
export function withTraceContext<T>(ctx: otel.Context | undefined, fn: () => T): T {
  const api = loadOtel()
  return api === undefined || ctx === undefined ? fn() : api.context.with(ctx, fn)
}
