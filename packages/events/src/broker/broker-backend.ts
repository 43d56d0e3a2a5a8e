/**
 * The contract of a broker's storage: the embedded segment log (`embedded/`) and NATS JetStream
 * (`jetstream/`) implement it, and one behaviour suite (test/broker-backend-suite.ts) runs against
 * both. The ingress appends; the dispatcher reads each trigger's consumer, delivers, and acks.
 *
 * Delivery is at-least-once: `append` resolves only once every event is durable (on disk and
 * fsynced, or acknowledged by JetStream with its stream on file storage); a delivery that is not
 * acked is handed out again after a restart (or after `ackWait`), so a consumer may see an event
 * twice and identifies duplicates by the event's (source, id). Order across a consumer's deliveries
 * is not promised once several are in flight.
 */

export interface BrokerRef {
  readonly namespace: string
  readonly name: string
}

export interface ConsumerOptions {
  /** Deliveries handed out and not yet acked at once (the dispatcher's window). Default 256. */
  maxInFlight?: number
  /** A delivery not acked or nak'ed within this long is handed out again. Default 60 s. */
  ackWait?: number
}

/** One event handed to a consumer. Settle it exactly once with `ack` or `nak`. */
export interface Delivery {
  /** The event's position in its broker's log (strictly increasing per broker). */
  readonly seq: number
  /** The event as stored: CloudEvents JSON format (structured mode), UTF-8. */
  readonly data: Uint8Array
  /** 1 on the first hand-out, more when it is handed out again (after a restart, an ackWait or a nak). */
  readonly deliveryCount: number
  /** Done with it (delivered, or dead-lettered): it is not handed out again. Durable once resolved. */
  ack(): Promise<void>
  /** Give it back: it is handed out again after `delayMs` (default at once). */
  nak(delayMs?: number): void
}

export interface TriggerConsumer {
  /** The next delivery; waits until there is one, or rejects with an AbortError when `signal` aborts. */
  next(signal?: AbortSignal): Promise<Delivery>
  /** Events appended to the broker and not yet acked by this consumer (exact or a close estimate). */
  lag(): Promise<number>
  /** Stops handing out; unacked deliveries stay pending for the next consumer of this trigger. */
  close(): Promise<void>
}

export interface BrokerStats {
  /** Events stored and not yet removed by retention/compaction. */
  readonly events: number
  readonly bytes: number
  /** The seq the next append gets. */
  readonly nextSeq: number
}

export interface BrokerBackend {
  /** `embedded` or `jetstream`: shown by `meshlet get brokers` and in metrics. */
  readonly kind: string
  /** Stores the events in order; resolves when all are durable. Rejects with MESHLET_ERR_BROKER_UNAVAILABLE when it cannot. */
  append(broker: BrokerRef, events: readonly Uint8Array[]): Promise<void>
  /**
   * The durable consumer of one trigger on one broker. Created on first use, starting at the
   * broker's current end (events appended before the trigger existed are not delivered to it);
   * afterwards it resumes where it left off, across restarts. One open consumer per trigger at a time.
   */
  consumer(broker: BrokerRef, trigger: string, options?: ConsumerOptions): Promise<TriggerConsumer>
  /** Forgets a trigger's consumer and its position. */
  deleteConsumer(broker: BrokerRef, trigger: string): Promise<void>
  /** Removes a broker's events and consumers. */
  deleteBroker(broker: BrokerRef): Promise<void>
  stats(broker: BrokerRef): Promise<BrokerStats>
  /** Flushes what is pending and releases files/connections; appends after close reject. */
  close(): Promise<void>
}
