/**
 * What the receivers of one `events(mesh)` counted, for `inspect()`, and the same as OpenTelemetry
 * metrics through the mesh's meter when the app has one: `meshlet.events.deliveries` by trigger and
 * outcome (`replied`, `accepted`, `failed`, `invalid`), and `meshlet.events.outbox.depth`.
 * Attribute sets are made once per trigger and outcome, so counting allocates nothing.
 */
import type { Mesh } from '@meshlet/core'

// The OTel types as the mesh's meter has them (@opentelemetry/api is the app's, optional).
type Meter = NonNullable<Mesh['metrics']['meter']>
type Counter = ReturnType<Meter['createCounter']>
type ObservableGauge = ReturnType<Meter['createObservableGauge']>
type GaugeCallback = Parameters<ObservableGauge['addCallback']>[0]

export interface TriggerCounts {
  /** Deliveries decoded into an event and given to the handler. */
  received: number
  /** The handler returned an event (200 with the reply). */
  replied: number
  /** The handler threw, or its reply was not an event (500). */
  failed: number
  /** Deliveries that were not one valid CloudEvent (400, 413, 415). */
  invalid: number
}

type Outcome = 'replied' | 'accepted' | 'failed' | 'invalid'

export class DeliveryCounters {
  readonly #mesh: Mesh
  readonly #counts = new Map<string, TriggerCounts>()
  readonly #deliveries: Counter | undefined
  readonly #outboxGauge: ObservableGauge | undefined
  #outboxCallback: GaugeCallback | undefined

  constructor(mesh: Mesh) {
    this.#mesh = mesh
    const meter = mesh.metrics.meter
    this.#deliveries = meter?.createCounter('meshlet.events.deliveries', { unit: '{delivery}', description: 'Event deliveries received by triggers, by trigger and outcome (replied, accepted, failed, invalid).' })
    this.#outboxGauge = meter?.createObservableGauge('meshlet.events.outbox.depth', { unit: '{event}', description: 'Events in the publisher outbox, not yet taken by the broker.' })
  }

  /** Reports `depth()` as the outbox gauge, from now until close(). */
  observeOutbox(depth: () => number): void {
    if (this.#outboxGauge === undefined || this.#outboxCallback !== undefined) return
    const attributes = { 'meshlet.service': this.#mesh.service }
    this.#outboxCallback = (result) => result.observe(depth(), attributes)
    this.#outboxGauge.addCallback(this.#outboxCallback)
  }

  close(): void {
    if (this.#outboxCallback !== undefined) this.#outboxGauge?.removeCallback(this.#outboxCallback)
  }

  counts(name: string): TriggerCounts {
    let c = this.#counts.get(name)
    if (c === undefined) this.#counts.set(name, (c = { received: 0, replied: 0, failed: 0, invalid: 0 }))
    return c
  }

  received(name: string): void {
    this.counts(name).received++
  }

  replied(name: string): void {
    this.counts(name).replied++
    this.#record(name, 'replied')
  }

  accepted(name: string): void {
    this.#record(name, 'accepted')
  }

  failed(name: string): void {
    this.counts(name).failed++
    this.#record(name, 'failed')
  }

  invalid(name: string): void {
    this.counts(name).invalid++
    this.#record(name, 'invalid')
  }

  #record(name: string, outcome: Outcome): void {
    if (this.#deliveries === undefined) return
    const attributes = this.#mesh.metrics.attributes(`events.delivery\0${name}\0${outcome}`, () => ({ 'meshlet.service': this.#mesh.service, 'meshlet.trigger': name, 'meshlet.outcome': outcome }))
    this.#deliveries.add(1, attributes)
  }
}
