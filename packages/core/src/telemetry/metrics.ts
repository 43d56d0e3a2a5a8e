/**
 * Golden-signal and mesh metrics with OpenTelemetry semantic-convention names and units. Attribute
 * sets are built once per (destination, method, status) and reused, so recording allocates nothing.
 */
import type { Attributes, Counter, Histogram, Meter, MeterProvider } from '@opentelemetry/api'
import { loadOtel } from './otel.js'

const VERSION = '0.1.0'
/** OTel semconv advisory buckets for HTTP/RPC durations, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

const noopHistogram = { record() {} } as unknown as Histogram
const noopCounter = { add() {} } as unknown as Counter

export class MeshMetrics {
  readonly clientDuration: Histogram
  readonly serverDuration: Histogram
  readonly retries: Counter
  readonly ejections: Counter
  readonly breakerTransitions: Counter
  readonly admissionRejected: Counter
  readonly admissionQueueDuration: Histogram
  readonly configRejected: Counter
  readonly faultsInjected: Counter
  readonly mirrored: Counter
  readonly meter: Meter | undefined
  readonly #attrs = new Map<string, Attributes>()

  constructor(meterProvider?: MeterProvider) {
    const api = loadOtel()
    const meter = meterProvider?.getMeter('@meshlet/core', VERSION) ?? api?.metrics.getMeter('@meshlet/core', VERSION)
    this.meter = meter
    const hist = (name: string, description: string): Histogram =>
      meter ? meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: DURATION_BUCKETS } }) : noopHistogram
    const counter = (name: string, description: string, unit = '{event}'): Counter => (meter ? meter.createCounter(name, { unit, description }) : noopCounter)
    this.clientDuration = hist('http.client.request.duration', 'Duration of HTTP client calls through the mesh, retries included.')
    this.serverDuration = hist('http.server.request.duration', 'Duration of HTTP server requests handled by the mesh.')
    this.retries = counter('meshlet.retries', 'Retry decisions by destination: outcome "sent", or why a retryable failure was not retried (budget_exhausted, deadline, attempts, body_not_replayable, cancelled).', '{retry}')
    this.ejections = counter('meshlet.endpoint.ejections', 'Endpoints ejected by outlier detection.', '{ejection}')
    this.breakerTransitions = counter('meshlet.breaker.state', 'Breaker state transitions, by destination and new state.', '{transition}')
    this.mirrored = counter('meshlet.requests.mirrored', 'Requests copied to a shadow revision by routes.', '{request}')
    this.faultsInjected = counter('meshlet.faults.injected', 'Faults injected by routes, by destination and kind (abort, delay).', '{fault}')
    this.configRejected = counter('meshlet.config.rejected', 'Policy updates refused as invalid; the previous policy stayed in force.', '{update}')
    this.admissionRejected = counter('meshlet.admission.rejected', 'Inbound requests refused before processing, by reason.', '{request}')
    this.admissionQueueDuration = hist('meshlet.admission.queue.duration', 'Time inbound requests waited in the admission queue, by outcome (granted, queue_timeout, deadline, draining).')
  }

  /** A cached attribute set: `key` must determine `build()`'s result. */
  attributes(key: string, build: () => Attributes): Attributes {
    let a = this.#attrs.get(key)
    if (a === undefined) {
      a = Object.freeze(build())
      if (this.#attrs.size < 10_000) this.#attrs.set(key, a)
    }
    return a
  }
}
