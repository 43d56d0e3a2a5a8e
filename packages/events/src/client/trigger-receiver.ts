/**
 * One trigger's receiver: turns a delivery (an HTTP request from the broker) into a call of the
 * handler and its outcome into the answer the broker reads (Knative's subscriber contract):
 *
 * - the handler returned an event → 200 with it in binary mode (a reply: the broker enqueues it);
 * - it returned nothing → 202; it threw or rejected → 500 with a short text (the broker retries);
 * - the delivery is not one valid CloudEvent → the codec's status (400 EVENT_INVALID, 413, 415)
 *   with `{ error: { code, message } }` naming the reason: sending it again cannot succeed.
 *
 * The event is given to the handler exactly as decoded: a receiver never fills in attributes. A
 * reply given as a plain object is completed like a publish (it is this service's event). No
 * failure of a handler escapes this function: the process never crashes for one.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { httpStatusOf, isMeshletError, type Mesh } from '@meshlet/core'
import type { CloudEvent } from 'cloudevents'
import { decodeHttpEvents, encodeBinary } from '../codec/index.js'
import { publishedEvent, type PublishableEvent } from './published-event.js'
import type { DeliveryCounters } from './delivery-counters.js'

export interface DeliveryContext {
  /** Aborted when the broker gave up on this delivery (the request was closed) or events(mesh) closed. */
  readonly signal: AbortSignal
  /** How many times the broker has handed this event to this trigger, this one included, when it says. */
  readonly deliveryCount?: number
}

export type TriggerHandler = (event: CloudEvent<unknown>, ctx: DeliveryContext) => void | PublishableEvent | Promise<void | PublishableEvent>

export interface Delivery {
  readonly headers: IncomingHttpHeaders
  readonly body: Uint8Array
}

export interface DeliveryAnswer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: Uint8Array | string
}

/** Header in which the broker says how many times it has handed this event out (1 on the first). */
export const DELIVERY_COUNT_HEADER = 'meshlet-delivery-count'
const MAX_FAILURE_TEXT = 200

export class TriggerReceiver {
  readonly name: string
  readonly #handler: TriggerHandler
  readonly #mesh: Mesh
  readonly #maxEventSize: number
  readonly #counters: DeliveryCounters

  constructor(name: string, handler: TriggerHandler, mesh: Mesh, maxEventSize: number, counters: DeliveryCounters) {
    this.name = name
    this.#handler = handler
    this.#mesh = mesh
    this.#maxEventSize = maxEventSize
    this.#counters = counters
  }

  async receive(delivery: Delivery, signal: AbortSignal): Promise<DeliveryAnswer> {
    let event: CloudEvent<unknown>
    try {
      const decoded = decodeHttpEvents({ headers: delivery.headers, body: delivery.body }, { maxEventSize: this.#maxEventSize })
      if (decoded.events.length !== 1) return this.#invalid(400, 'MESHLET_ERR_EVENT_INVALID', `A delivery to trigger "${this.name}" carries one event; this one carried a batch of ${decoded.events.length}.`)
      event = decoded.events[0]! as CloudEvent<unknown>
    } catch (err) {
      if (!isMeshletError(err)) throw err
      return this.#invalid(httpStatusOf(err.code), err.code, err.message)
    }
    this.#counters.received(this.name)
    const count = deliveryCount(delivery.headers[DELIVERY_COUNT_HEADER])
    let reply: void | PublishableEvent
    try {
      reply = await this.#handler(event, count === undefined ? { signal } : { signal, deliveryCount: count })
    } catch (err) {
      return this.#failed(`trigger "${this.name}" failed: ${describe(err)}`)
    }
    if (reply === undefined || reply === null) {
      this.#counters.accepted(this.name)
      return { status: 202, headers: {}, body: '' }
    }
    try {
      const encoded = encodeBinary(publishedEvent(reply, `/${this.#mesh.namespace}/${this.#mesh.service}`))
      this.#counters.replied(this.name)
      return { status: 200, headers: { ...encoded.headers }, body: encoded.body ?? '' }
    } catch (err) {
      return this.#failed(`trigger "${this.name}" returned a reply that is not a valid CloudEvent: ${describe(err)}`)
    }
  }

  #invalid(status: number, code: string, message: string): DeliveryAnswer {
    this.#counters.invalid(this.name)
    return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code, message } }) }
  }

  #failed(text: string): DeliveryAnswer {
    this.#counters.failed(this.name)
    return { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text.length > MAX_FAILURE_TEXT ? `${text.slice(0, MAX_FAILURE_TEXT - 1)}…` : text }
  }
}

function deliveryCount(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || !/^\d{1,9}$/.test(text)) return undefined
  const n = Number(text)
  return n >= 1 ? n : undefined
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n', 1)[0] ?? err.name
  return String(err)
}
