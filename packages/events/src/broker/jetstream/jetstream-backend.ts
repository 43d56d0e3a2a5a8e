import { ConfigError, type ConfigIssue, ErrorCodes, MeshletError } from '@meshlet/core'
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream'
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node'
import type { BrokerBackend, BrokerRef, BrokerStats, ConsumerOptions, TriggerConsumer } from '../broker-backend.js'
import { ConnectionWatch } from './connection-watch.js'
import { eventMsgId } from './event-msg-id.js'
import { brokerUnavailable, isConsumerNotFound, isStreamNotFound, toBrokerError } from './jetstream-errors.js'
import { type BrokerStreamNames, brokerStreamNames, triggerDurableName } from './jetstream-names.js'
import { type JetStreamBackendOptions, type ResolvedJetStreamOptions, resolveJetStreamOptions } from './jetstream-options.js'
import { JetStreamTriggerConsumer } from './jetstream-consumer.js'

/*
 * What the Debian nats-server 2.9.10 supports, checked against it (test/jetstream-*.test.ts and the
 * behaviour suite): file streams with Nats-Msg-Id de-duplication in a duplicate window; discard
 * old/new; durable pull consumers with explicit ack, ack_wait, max_ack_pending and deliver policy
 * new; `-NAK {"delay":…}` (nak with a delay, server ≥ 2.7.1); acks with a reply (ackAck, a "double
 * ack"); consumer `backoff` only together with a finite max_deliver greater than its length, which
 * this backend does not use (below). Not in 2.9: stream compression, subject transforms, consumer
 * metadata, multiple filter subjects, pause, priority groups (2.10–2.11) — none is used.
 * 2.9 writes a stream's messages to the file before acking a publish, so a killed server
 * (SIGKILL) keeps acked events; it does not fsync by default (sync every 2 min), so a machine
 * crash can lose the last ones. Consumer acks are written asynchronously: a SIGKILL can forget
 * the last acks (those events are redelivered), a clean stop does not.
 */

/** A JetStream broker backend: the contract, plus the connection's state for health checks. */
export interface JetStreamBackend extends BrokerBackend {
  readonly kind: 'jetstream'
  /** True while connected to a NATS server; false while the client reconnects, and after close. */
  readonly connected: boolean
  /** Resolves once connected (at once when connected now); rejects after close or when `signal` aborts. */
  whenConnected(signal?: AbortSignal): Promise<void>
}

const DEFAULT_MAX_IN_FLIGHT = 256
const DEFAULT_ACK_WAIT_MS = 60_000
/** Publishes of one append awaiting their acks at once: enough to keep the server busy, bounded memory. */
const PUBLISH_WINDOW = 256
const noop = (): void => undefined

/**
 * Connects to the NATS servers and checks JetStream is enabled. Rejects with CONFIG_INVALID for bad
 * options and BROKER_UNAVAILABLE when no server answers or JetStream is off (`nats-server -js`).
 * Once connected the client reconnects forever; operations fail fast with BROKER_UNAVAILABLE meanwhile.
 */
export async function createJetStreamBackend(options: JetStreamBackendOptions): Promise<JetStreamBackend> {
  const resolved = resolveJetStreamOptions(options)
  let nc: NatsConnection
  try {
    nc = await connect({
      servers: resolved.servers,
      name: resolved.connectionName,
      ...(resolved.user !== undefined ? { user: resolved.user, pass: resolved.pass } : {}),
      ...(resolved.token !== undefined ? { token: resolved.token } : {}),
      ...(resolved.tls !== undefined ? { tls: resolved.tls } : {}),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    })
  } catch (err) {
    throw brokerUnavailable(`Could not connect to the NATS servers ${resolved.servers.join(', ')}: ${(err as Error).message}.`, { servers: resolved.servers }, err)
  }
  let jsm: JetStreamManager
  try {
    jsm = await jetstreamManager(nc)
  } catch (err) {
    await nc.close()
    throw brokerUnavailable(`JetStream is not available on ${nc.getServer()}: ${(err as Error).message} (start nats-server with -js).`, { server: nc.getServer() }, err)
  }
  return new JetStreamBrokerBackend(nc, jsm, resolved)
}

class JetStreamBrokerBackend implements JetStreamBackend {
  readonly kind = 'jetstream' as const
  readonly #nc: NatsConnection
  readonly #jsm: JetStreamManager
  readonly #js: JetStreamClient
  readonly #options: ResolvedJetStreamOptions
  readonly #watch: ConnectionWatch
  /** Streams known to exist, by name; an entry is dropped when creating fails or the stream vanished. */
  readonly #streams = new Map<string, Promise<void>>()
  /** Open consumers by `<stream>/<durable>`: one per trigger at a time. */
  readonly #consumers = new Map<string, JetStreamTriggerConsumer>()
  readonly #appending = new Set<Promise<void>>()
  #closed = false

  constructor(nc: NatsConnection, jsm: JetStreamManager, options: ResolvedJetStreamOptions) {
    this.#nc = nc
    this.#jsm = jsm
    this.#js = jsm.jetstream()
    this.#options = options
    this.#watch = new ConnectionWatch(nc, () => nc.getServer())
  }

  get connected(): boolean {
    return !this.#closed && this.#watch.connected
  }

  whenConnected(signal?: AbortSignal): Promise<void> {
    return this.#watch.whenConnected(signal)
  }

  append(broker: BrokerRef, events: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) return Promise.reject(closedError('append'))
    const appending = this.#append(broker, events)
    this.#appending.add(appending)
    const forget = (): void => {
      this.#appending.delete(appending)
    }
    appending.then(forget, forget)
    return appending
  }

  async #append(broker: BrokerRef, events: readonly Uint8Array[]): Promise<void> {
    const names = brokerStreamNames(this.#options.streamPrefix, broker)
    // Every event is checked before the first is sent: a bad batch stores nothing.
    const ids = events.map((event, i) => eventMsgId(event, i))
    if (events.length === 0) return
    const details = { broker: `${broker.namespace}/${broker.name}`, stream: names.stream, events: events.length }
    try {
      await this.#watch.guard(async () => {
        await this.#ensureStream(names)
        await this.#publishAll(names.subject, events, ids)
      }, 'the append')
    } catch (err) {
      // No responders: the stream was deleted behind our back (or JetStream restarts); look again next time.
      this.#streams.delete(names.stream)
      throw toBrokerError(err, 'the append', details)
    }
  }

  /** Pipelined: up to PUBLISH_WINDOW publishes awaiting their acks; resolves when JetStream acked all. */
  async #publishAll(subject: string, events: readonly Uint8Array[], ids: readonly string[]): Promise<void> {
    const acks: Promise<unknown>[] = []
    for (let i = 0; i < events.length; i++) {
      if (i >= PUBLISH_WINDOW) await acks[i - PUBLISH_WINDOW]
      const ack = this.#js.publish(subject, events[i], { msgID: ids[i] })
      // Awaited below; the handler only keeps an early failure elsewhere from being "unhandled".
      ack.catch(noop)
      acks.push(ack)
    }
    await Promise.all(acks)
  }

  async consumer(broker: BrokerRef, trigger: string, options: ConsumerOptions = {}): Promise<TriggerConsumer> {
    if (this.#closed) throw closedError('open a consumer')
    const { maxInFlight, ackWait } = consumerOptions(options)
    const names = brokerStreamNames(this.#options.streamPrefix, broker)
    const durable = triggerDurableName(trigger)
    const key = `${names.stream}/${durable}`
    if (this.#consumers.has(key)) {
      throw new MeshletError(ErrorCodes.CONFLICT, `Trigger "${trigger}" of broker ${broker.namespace}/${broker.name} already has an open consumer; close it first.`, {
        details: { trigger, stream: names.stream },
      })
    }
    const doing = `opening the consumer of trigger "${trigger}"`
    const starting = (async () => {
      await this.#ensureStream(names)
      const info = await this.#ensureConsumer(names.stream, durable, maxInFlight, ackWait, trigger)
      const consumer = this.#js.consumers.getConsumerFromInfo(info)
      return JetStreamTriggerConsumer.start(consumer, this.#watch, maxInFlight, () => this.#consumers.delete(key))
    })()
    try {
      let opened: JetStreamTriggerConsumer
      try {
        opened = await this.#watch.guard(() => starting, doing)
      } catch (err) {
        // The connection dropped while starting: one that starts anyway is closed, not leaked.
        starting.then((late) => late.close()).catch(noop)
        throw err
      }
      if (this.#closed || this.#consumers.has(key)) {
        await opened.close()
        throw this.#closed ? closedError('open a consumer') : new MeshletError(ErrorCodes.CONFLICT, `Trigger "${trigger}" was opened twice at once.`, { details: { trigger } })
      }
      this.#consumers.set(key, opened)
      return opened
    } catch (err) {
      throw toBrokerError(err, doing, { trigger, stream: names.stream })
    }
  }

  async #ensureConsumer(stream: string, durable: string, maxInFlight: number, ackWaitMs: number, trigger: string) {
    const ackWait = nanos(ackWaitMs)
    try {
      const info = await this.#jsm.consumers.info(stream, durable)
      if (info.config.ack_wait === ackWait && info.config.max_ack_pending === maxInFlight) return info
      // Both are editable on a durable consumer; its position and pending acks are kept.
      return await this.#jsm.consumers.update(stream, durable, { ack_wait: ackWait, max_ack_pending: maxInFlight })
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err
    }
    return this.#jsm.consumers.add(stream, {
      durable_name: durable,
      description: `meshlet trigger ${trigger}`,
      ack_policy: AckPolicy.Explicit,
      // The contract: a new trigger starts at the broker's end.
      deliver_policy: DeliverPolicy.New,
      ack_wait: ackWait,
      max_ack_pending: maxInFlight,
      // Unlimited: the dispatcher counts attempts (deliveryCount) and dead-letters, then acks. A
      // finite max_deliver would make JetStream drop the event silently instead (and `backoff`
      // requires one, so redelivery delays come from nak(delay)).
      max_deliver: -1,
    })
  }

  async deleteConsumer(broker: BrokerRef, trigger: string): Promise<void> {
    if (this.#closed) throw closedError('delete a consumer')
    const names = brokerStreamNames(this.#options.streamPrefix, broker)
    const durable = triggerDurableName(trigger)
    await this.#consumers.get(`${names.stream}/${durable}`)?.close()
    try {
      await this.#watch.guard(() => this.#jsm.consumers.delete(names.stream, durable), 'deleting a consumer')
    } catch (err) {
      if (isConsumerNotFound(err) || isStreamNotFound(err)) return
      throw toBrokerError(err, `deleting the consumer of trigger "${trigger}"`, { trigger, stream: names.stream })
    }
  }

  async deleteBroker(broker: BrokerRef): Promise<void> {
    if (this.#closed) throw closedError('delete a broker')
    const names = brokerStreamNames(this.#options.streamPrefix, broker)
    const open = [...this.#consumers].filter(([key]) => key.startsWith(`${names.stream}/`))
    await Promise.all(open.map(([, consumer]) => consumer.close()))
    this.#streams.delete(names.stream)
    try {
      await this.#watch.guard(() => this.#jsm.streams.delete(names.stream), 'deleting a broker')
    } catch (err) {
      if (isStreamNotFound(err)) return
      throw toBrokerError(err, 'deleting the broker', { stream: names.stream })
    }
  }

  async stats(broker: BrokerRef): Promise<BrokerStats> {
    if (this.#closed) throw closedError('read stats')
    const names = brokerStreamNames(this.#options.streamPrefix, broker)
    try {
      const { state } = await this.#watch.guard(() => this.#jsm.streams.info(names.stream), 'reading stats')
      return { events: state.messages, bytes: state.bytes, nextSeq: state.last_seq + 1 }
    } catch (err) {
      // A broker nothing was appended to has no stream yet; JetStream's first sequence is 1.
      if (isStreamNotFound(err)) return { events: 0, bytes: 0, nextSeq: 1 }
      throw toBrokerError(err, 'reading stats', { stream: names.stream })
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Appends under way finish (or fail) first; naks of what consumers held go out before the drain.
    await Promise.allSettled([...this.#appending])
    await Promise.allSettled([...this.#consumers.values()].map((consumer) => consumer.closeForBackend()))
    const connected = this.#watch.connected
    this.#watch.markClosed()
    try {
      // Drain flushes what is buffered (the naks) and waits for the server; while disconnected there is no one to flush to.
      if (connected) await this.#nc.drain()
      else await this.#nc.close()
    } catch {
      await this.#nc.close()
    }
  }

  /** Creates the broker's stream on first use; an existing stream is used as it is. */
  #ensureStream(names: BrokerStreamNames): Promise<void> {
    let ready = this.#streams.get(names.stream)
    if (ready === undefined) {
      ready = this.#createStream(names)
      this.#streams.set(names.stream, ready)
      const mine = ready
      ready.catch(() => {
        if (this.#streams.get(names.stream) === mine) this.#streams.delete(names.stream)
      })
    }
    return ready
  }

  async #createStream(names: BrokerStreamNames): Promise<void> {
    try {
      await this.#jsm.streams.info(names.stream)
      return
    } catch (err) {
      if (!isStreamNotFound(err)) throw err
    }
    const { maxAgeMs, duplicateWindowMs, replicas } = this.#options
    // Limits retention: every trigger's consumer reads every event; events leave by age only.
    await this.#jsm.streams.add({
      name: names.stream,
      description: `meshlet broker ${names.subject}`,
      subjects: [names.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(maxAgeMs),
      duplicate_window: nanos(duplicateWindowMs),
      num_replicas: replicas,
    })
  }
}

function consumerOptions(options: ConsumerOptions): { maxInFlight: number; ackWait: number } {
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT
  const ackWait = options.ackWait ?? DEFAULT_ACK_WAIT_MS
  const issues: ConfigIssue[] = []
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) issues.push({ path: 'maxInFlight', message: 'must be a positive integer' })
  if (!Number.isInteger(ackWait) || ackWait < 1) issues.push({ path: 'ackWait', message: 'must be a positive whole number of milliseconds' })
  if (issues.length > 0) throw new ConfigError(issues, 'consumer options')
  return { maxInFlight, ackWait }
}

function closedError(doing: string): MeshletError {
  return brokerUnavailable(`The JetStream broker backend is closed; cannot ${doing}.`)
}
