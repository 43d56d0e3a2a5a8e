/**
 * One trigger's dispatcher: reads its consumer on the broker's backend and, for each delivery,
 * decodes the stored event, drops it when its TTL is spent, filters it, and delivers a match to the
 * subscriber with the trigger's retries; a delivery that fails for good goes to the dead-letter
 * sink with Knative's error extensions; a reply is appended to the broker with the TTL decremented.
 *
 * Contract:
 * - At most `maxInFlight` deliveries are held at once (each until its ack is sent), and at most
 *   `maxInFlight` more acks wait to be made durable, so a slow subscriber or a slow disk bounds
 *   the memory the broker spends on a trigger; deliveries are pipelined, not ordered.
 * - A delivery is acked only once it is done with (delivered, filtered out, dead-lettered, or
 *   given up on without a sink); when a reply or a dead letter cannot be stored or sent, it is
 *   nak'ed with a delay and tried again later, so no event is lost to a broken sink. The window
 *   does not wait for the ack's durability (a cursor write, an fsync): the backend has taken the
 *   ack once ack() returns, and a crash before it is durable only hands the event out again.
 * - Events are read through a fast path (stored-event.ts) and through the codec when that path
 *   does not take them: both give the filter the same attributes and the subscriber the same message.
 * - Nothing a subscriber or an event does throws out of here: bad events are logged and acked,
 *   failures are counted; only close() ends the loop. Deliveries in flight when it closes stay
 *   unacked and are handed out again to the next consumer of the trigger.
 */
import type { CloudEvent } from 'cloudevents'
import type { Dispatcher } from 'undici'
import { decodeHttpEvents, encodeBinary } from '../../codec/http-binding.js'
import { fromStructuredBytes, toStructuredBytes, withAttributes } from '../../codec/json-format.js'
import type { BrokerRef, Delivery, TriggerConsumer } from '../broker-backend.js'
import { deadLetterEvent } from './dead-letter-event.js'
import { deliverWithRetries, type DeliveryOutcome } from './delivery-attempts.js'
import type { DispatchRuntime } from './dispatch-runtime.js'
import { brokerTtl, DEFAULT_BROKER_TTL, TTL_EXTENSION } from './event-ttl.js'
import { binaryMessageOf, readStoredEvent, type StoredEvent } from './stored-event.js'
import { AttemptGroup, type AttemptOptions, type EncodedMessage, type SubscriberResponse } from './subscriber-request.js'
import type { Target, TriggerPlan } from './trigger-plan.js'

/** Counted since the dispatcher started (the control process's lifetime for this trigger). */
export interface TriggerCounters {
  /** Acknowledged by the subscriber with a 2xx. */
  delivered: number
  /** Retries sent (attempts after the first). */
  retried: number
  /** Given up on and sent to the dead-letter sink. */
  deadLettered: number
  /** Given up on with no dead-letter sink: dropped, as Knative does. */
  failed: number
  /** Did not match the filter. */
  filtered: number
  /** Dropped because their TTL was spent (a reply loop), or undecodable in the log. */
  dropped: number
  /** Reply events appended to the broker. */
  replies: number
  /** Deliveries held now (≤ maxInFlight). */
  inFlight: number
  /** Acks sent and not yet durable (≤ maxInFlight). */
  acking: number
}

export function newTriggerCounters(): TriggerCounters {
  return { delivered: 0, retried: 0, deadLettered: 0, failed: 0, filtered: 0, dropped: 0, replies: 0, inFlight: 0, acking: 0 }
}

/** The receiver's header (client/trigger-receiver.ts reads it): how many times the event has been sent, at least. */
const DELIVERY_COUNT_HEADER = 'meshlet-delivery-count'

/** How long a delivery whose reply or dead letter could not be stored waits before it is handed out again. */
const SETTLE_RETRY_MS = 30_000
/** Waits between attempts to open or read the consumer while the backend fails. */
const BACKEND_BACKOFF_MS = [100, 500, 1000, 2000, 5000]

export class TriggerDispatcher {
  readonly namespace: string
  readonly name: string
  readonly broker: BrokerRef
  readonly counters: TriggerCounters
  /** Why the consumer cannot be read just now (the backend's error), for status. */
  backendError: string | undefined
  #plan: TriggerPlan
  readonly #rt: DispatchRuntime
  readonly #abort = new AbortController()
  readonly #attempts = new AttemptGroup()
  #consumer: TriggerConsumer | undefined
  #loop: Promise<void> | undefined
  /** Resolves the read loop's wait for room in the window. */
  #wake: (() => void) | undefined
  /** Resolves close()'s wait for the deliveries and acks still held. */
  #idle: (() => void) | undefined

  /** `counters` may outlive the dispatcher (the trigger stopped while its service had no instances, and started again). */
  constructor(runtime: DispatchRuntime, namespace: string, name: string, broker: string, plan: TriggerPlan, counters: TriggerCounters = newTriggerCounters()) {
    this.#rt = runtime
    this.counters = counters
    this.namespace = namespace
    this.name = name
    this.broker = { namespace, name: broker }
    this.#plan = plan
  }

  get plan(): TriggerPlan {
    return this.#plan
  }

  /** Takes a new version of the trigger: deliveries that start from now on use it. */
  update(plan: TriggerPlan): void {
    this.#plan = plan
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  /** Events not yet acked by this trigger's consumer; undefined while it is not open. */
  async lag(): Promise<number | undefined> {
    try {
      return await this.#consumer?.lag()
    } catch {
      return undefined
    }
  }

  /** Stops reading, abandons deliveries in flight (they stay unacked), closes the consumer. */
  async close(): Promise<void> {
    const reason = new Error(`trigger ${this.namespace}/${this.name} stopped`)
    this.#abort.abort(reason)
    this.#attempts.abort(reason)
    this.#wake?.()
    await this.#loop
    if (this.counters.inFlight > 0 || this.counters.acking > 0) await new Promise<void>((resolve) => (this.#idle = resolve))
    await this.#consumer?.close().catch((err: unknown) => this.#rt.log.warn(`closing the consumer of trigger ${this.namespace}/${this.name} failed: ${(err as Error).message}`))
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    const what = `trigger ${this.namespace}/${this.name} (broker ${this.broker.name})`
    let failures = 0
    while (!signal.aborted) {
      try {
        if (this.#consumer === undefined) this.#consumer = await this.#rt.backend.consumer(this.broker, this.name, { maxInFlight: this.#rt.maxInFlight })
        if (this.counters.inFlight >= this.#rt.maxInFlight || this.counters.acking >= this.#rt.maxInFlight) {
          await new Promise<void>((resolve) => (this.#wake = resolve))
          this.#wake = undefined
          continue
        }
        const delivery = await this.#consumer.next(signal)
        if (failures > 0) this.#rt.log.info(`${what}: reading its consumer works again`)
        failures = 0
        this.backendError = undefined
        this.counters.inFlight++
        void this.#handle(delivery)
      } catch (err) {
        if (signal.aborted) break
        this.backendError = (err as Error)?.message ?? String(err)
        if (failures === 0) this.#rt.log.error(`${what}: its consumer on the ${this.#rt.backend.kind} broker failed (${this.backendError}); retrying until it works`)
        await sleep(BACKEND_BACKOFF_MS[Math.min(failures++, BACKEND_BACKOFF_MS.length - 1)]!, signal)
      }
    }
  }

  /** Holds one slot of the window from hand-out until its ack is sent (or it is nak'ed). Never rejects. */
  async #handle(delivery: Delivery): Promise<void> {
    const signal = this.#abort.signal
    try {
      const settle = await this.#process(delivery, this.#plan, signal)
      if (signal.aborted) return
      if (settle === 'ack') this.#ack(delivery)
      else delivery.nak(SETTLE_RETRY_MS)
    } catch (err) {
      if (signal.aborted) return
      this.#settleAgainLater(delivery, err)
    } finally {
      this.counters.inFlight--
      this.#released()
    }
  }

  /** Sends the ack; its durability is waited for outside the window, counted in `acking`. */
  #ack(delivery: Delivery): void {
    this.counters.acking++
    delivery.ack().then(
      () => this.#acked(),
      (err: unknown) => {
        this.#acked()
        if (!this.#abort.signal.aborted) this.#settleAgainLater(delivery, err)
      },
    )
  }

  #acked(): void {
    this.counters.acking--
    this.#released()
  }

  #released(): void {
    this.#wake?.()
    if (this.#idle !== undefined && this.counters.inFlight === 0 && this.counters.acking === 0) this.#idle()
  }

  /** A bug or a backend failure while settling: handing the event out again loses nothing. */
  #settleAgainLater(delivery: Delivery, err: unknown): void {
    this.#rt.log.error(`trigger ${this.namespace}/${this.name}: delivery of seq ${delivery.seq} failed unexpectedly (${(err as Error)?.stack ?? String(err)}); it is handed out again in ${SETTLE_RETRY_MS / 1000}s`)
    try {
      delivery.nak(SETTLE_RETRY_MS)
    } catch {
      // The consumer is gone; the delivery is handed out again after a restart.
    }
  }

  async #process(delivery: Delivery, plan: TriggerPlan, signal: AbortSignal): Promise<'ack' | 'nak'> {
    let event: StoredEvent | CloudEvent<unknown> | undefined = readStoredEvent(delivery.data)
    const fast = event !== undefined
    if (event === undefined) {
      try {
        event = fromStructuredBytes(delivery.data)
      } catch (err) {
        this.counters.dropped++
        this.#rt.log.error(`trigger ${this.namespace}/${this.name}: the event at seq ${delivery.seq} of broker ${this.broker.name} cannot be decoded (${(err as Error).message}); skipped`)
        return 'ack'
      }
    }
    const ttl = brokerTtl(event) ?? DEFAULT_BROKER_TTL
    if (ttl <= 0) {
      this.counters.dropped++
      return 'ack'
    }
    let matches: boolean
    try {
      matches = plan.filter(event)
    } catch (err) {
      // A filter is a predicate: an error evaluating it on this event means "no match" (Knative's FailFilter).
      this.#rt.log.warn(`trigger ${this.namespace}/${this.name}: its filter failed on event ${eventName(event)} (${(err as Error).message}); treated as no match`)
      matches = false
    }
    if (!matches) {
      this.counters.filtered++
      return 'ack'
    }
    // Subscribers see the event without the broker's TTL (Knative's filter removes it too).
    const message = fast ? binaryMessageOf(event, TTL_EXTENSION) : encodeBinary(withAttributes(event as CloudEvent<unknown>, { [TTL_EXTENSION]: undefined }))
    const outcome = await this.#deliver(plan.subscriber, message, plan, signal, delivery.deliveryCount)
    if (outcome.ok) {
      this.counters.delivered++
      return this.#reply(outcome.response, event, ttl)
    }
    const dls = plan.deadLetterSink
    const what = `trigger ${this.namespace}/${this.name}: event ${eventName(event)} could not be delivered to ${plan.subscriber.url} after ${outcome.attempts} attempt(s) (${outcome.reason})`
    if (dls === undefined) {
      this.counters.failed++
      this.#rt.log.warn(`${what}; it has no dead-letter sink, so it is dropped (set delivery.deadLetterSink on the trigger or its broker to keep such events)`)
      return 'ack'
    }
    // The rare path: the codec's event, checked in full, carries the error extensions.
    let sent: CloudEvent<unknown>
    try {
      sent = withAttributes(fast ? fromStructuredBytes(delivery.data) : (event as CloudEvent<unknown>), { [TTL_EXTENSION]: undefined })
    } catch (err) {
      this.counters.dropped++
      this.#rt.log.error(`${what}; and it cannot be decoded for its dead-letter sink (${(err as Error).message}): it is dropped`)
      return 'ack'
    }
    const dead = encodeBinary(deadLetterEvent(sent, { destination: plan.subscriber.url, status: outcome.status, body: outcome.body }))
    const sunk = await this.#deliver(dls, dead, plan, signal, 1)
    if (sunk.ok) {
      this.counters.deadLettered++
      return 'ack'
    }
    this.#rt.log.error(`${what}; and its dead-letter sink ${dls.url} failed too (${sunk.reason}): it is delivered again in ${SETTLE_RETRY_MS / 1000}s`)
    return 'nak'
  }

  /**
   * `handedOut`: the delivery's count on its consumer. Each attempt tells the receiver in
   * meshlet-delivery-count how many times at least the event has been sent (1 on the first), so a
   * handler can tell a retry from a first delivery.
   */
  #deliver(target: Target, message: EncodedMessage, plan: TriggerPlan, signal: AbortSignal, handedOut: number): Promise<DeliveryOutcome> {
    const { timeoutMs } = plan.policy
    let attempt = 0
    const send = (): Promise<SubscriberResponse> => {
      const headers = { ...message.headers, prefer: 'reply', [DELIVERY_COUNT_HEADER]: String(handedOut + attempt++) }
      const options = (dispatcher: Dispatcher): AttemptOptions => ({ dispatcher, timeoutMs, maxBodyBytes: this.#rt.maxEventSize })
      const ready = this.#rt.readyDispatcher(target)
      if (ready !== undefined) return this.#attempts.post(target, message, headers, options(ready))
      return this.#rt.dispatcherFor(target, signal, timeoutMs).then((dispatcher) => this.#attempts.post(target, message, headers, options(dispatcher)))
    }
    return deliverWithRetries(send, plan.policy, signal, { onRetry: () => void this.counters.retried++ })
  }

  /**
   * A 2xx with a CloudEvent in it (binary or structured; not a 202 or 204) is a reply: it goes back
   * into the broker with the delivered event's TTL minus one, or is dropped when that is spent.
   */
  async #reply(res: SubscriberResponse, delivered: StoredEvent | CloudEvent<unknown>, ttl: number): Promise<'ack' | 'nak'> {
    if (res.status === 202 || res.status === 204 || !carriesEvent(res)) return 'ack'
    let replies: CloudEvent<unknown>[]
    try {
      if (res.truncated) throw new Error(`the reply is larger than ${this.#rt.maxEventSize} bytes`)
      replies = decodeHttpEvents({ headers: res.headers, body: res.body }, { maxEventSize: this.#rt.maxEventSize }).events
    } catch (err) {
      this.#rt.log.warn(`trigger ${this.namespace}/${this.name}: the subscriber answered event ${eventName(delivered)} with a reply that is not a valid CloudEvent (${(err as Error).message}); the reply is dropped`)
      return 'ack'
    }
    const next = ttl - 1
    if (next <= 0) {
      this.counters.dropped += replies.length
      return 'ack'
    }
    try {
      await this.#rt.backend.append(this.broker, replies.map((r) => toStructuredBytes(withAttributes(r, { [TTL_EXTENSION]: next }))))
    } catch (err) {
      this.#rt.log.error(`trigger ${this.namespace}/${this.name}: the reply to event ${eventName(delivered)} could not be stored (${(err as Error).message}); the event is delivered again in ${SETTLE_RETRY_MS / 1000}s`)
      return 'nak'
    }
    this.counters.replies += replies.length
    return 'ack'
  }
}

/** `source/id`, how messages name an event. */
function eventName(event: StoredEvent | CloudEvent<unknown>): string {
  return `${String(event.source)}/${String(event.id)}`
}

function carriesEvent(res: SubscriberResponse): boolean {
  if (res.headers['ce-specversion'] !== undefined) return true
  const type = res.headers['content-type']
  return typeof type === 'string' && /^\s*application\/cloudevents(-batch)?\+json/i.test(type)
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
