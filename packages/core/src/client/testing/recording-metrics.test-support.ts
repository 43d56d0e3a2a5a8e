/**
 * MeshMetrics over a meter that keeps every measurement, so tests can count what a filter recorded
 * (`meshlet.retries` by outcome, `meshlet.faults.injected` by kind, ...). Test-only.
 */
import type { Attributes, MeterProvider } from '@opentelemetry/api'
import { MeshMetrics } from '../../telemetry/metrics.js'

export interface Measurement {
  readonly name: string
  readonly value: number
  readonly attributes: Attributes
}

export interface RecordingMetrics {
  readonly metrics: MeshMetrics
  readonly measurements: readonly Measurement[]
  /** Sum of the values recorded on `name` whose attributes include `match`. */
  sum(name: string, match?: Attributes): number
}

export function recordingMetrics(): RecordingMetrics {
  const measurements: Measurement[] = []
  const instrument = (name: string) => {
    const keep = (value: number, attributes: Attributes = {}) => void measurements.push({ name, value, attributes })
    return { add: keep, record: keep }
  }
  const meter = { createCounter: instrument, createHistogram: instrument, createUpDownCounter: instrument, createGauge: instrument }
  const provider = { getMeter: () => meter } as unknown as MeterProvider
  return {
    metrics: new MeshMetrics(provider),
    measurements,
    sum: (name, match = {}) =>
      measurements.filter((m) => m.name === name && Object.entries(match).every(([k, v]) => m.attributes[k] === v)).reduce((n, m) => n + m.value, 0),
  }
}
