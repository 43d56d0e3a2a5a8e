import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream'
import type { Delivery, TriggerConsumer } from '../broker-backend.js'
import type { ConnectionWatch } from './connection-watch.js'
import { brokerUnavailable, toBrokerError } from './jetstream-errors.js'

interface Waiter {
  resolve(delivery: Delivery): void
  reject(err: unknown): void
}

/**
 * One trigger's durable pull consumer. `consume()` keeps pull requests open for up to
 * `maxInFlight` messages, and the consumer's `max_ack_pending` (= maxInFlight) stops the server
 * from handing out more unsettled ones, so at most that many are buffered here or with the caller.
 * Messages wait in `#ready` until `next()` takes them; redeliveries (ack_wait, nak) arrive the same way.
 *
 * Closing gives the buffered messages back with a nak (they go at once to the trigger's next
 * consumer instead of after ack_wait); deliveries already handed out stay the caller's to settle.
 */
export class JetStreamTriggerConsumer implements TriggerConsumer {
  readonly #consumer: Consumer
  readonly #watch: ConnectionWatch
  readonly #onClose: () => void
  readonly #ready: JsMsg[] = []
  readonly #waiters: Waiter[] = []
  /** Handed out and not settled: the backend naks them when it closes, so a restart redelivers at once. */
  readonly #outstanding = new Set<JsMsg>()
  #messages: ConsumerMessages | undefined
  #closed = false

  private constructor(consumer: Consumer, watch: ConnectionWatch, onClose: () => void) {
    this.#consumer = consumer
    this.#watch = watch
    this.#onClose = onClose
  }

  static async start(consumer: Consumer, watch: ConnectionWatch, maxInFlight: number, onClose: () => void): Promise<JetStreamTriggerConsumer> {
    const self = new JetStreamTriggerConsumer(consumer, watch, onClose)
    // The callback form: no async iteration per message; the client re-pulls as the buffer drains.
    self.#messages = await consumer.consume({ max_messages: maxInFlight, callback: (msg) => self.#receive(msg) })
    return self
  }

  next(signal?: AbortSignal): Promise<Delivery> {
    if (this.#closed) return Promise.reject(brokerUnavailable('This trigger consumer is closed; open a new one.'))
    if (signal?.aborted) return Promise.reject(abortError(signal))
    const msg = this.#ready.shift()
    if (msg !== undefined) return Promise.resolve(this.#handOut(msg))
    return new Promise<Delivery>((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.#waiters.indexOf(waiter)
        if (at >= 0) this.#waiters.splice(at, 1)
        reject(abortError(signal))
      }
      const waiter: Waiter = {
        resolve: (delivery) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(delivery)
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiters.push(waiter)
    })
  }

  async lag(): Promise<number> {
    try {
      const info = await this.#watch.guard(() => this.#consumer.info(), 'reading the consumer')
      // Not yet handed out by the server, plus handed out and not acked.
      return info.num_pending + info.num_ack_pending
    } catch (err) {
      throw toBrokerError(err, 'reading the consumer')
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
    for (const waiter of this.#waiters.splice(0)) waiter.reject(brokerUnavailable('The trigger consumer was closed while waiting.'))
    try {
      await this.#messages?.close()
    } finally {
      for (const msg of this.#ready.splice(0)) giveBack(msg)
    }
  }

  /** The backend is closing: settle nothing more, give back everything handed out and unsettled. */
  async closeForBackend(): Promise<void> {
    await this.close()
    for (const msg of this.#outstanding) giveBack(msg)
    this.#outstanding.clear()
  }

  #receive(msg: JsMsg): void {
    // A pull answered after close: not ours any more.
    if (this.#closed) return giveBack(msg)
    const waiter = this.#waiters.shift()
    if (waiter === undefined) this.#ready.push(msg)
    else waiter.resolve(this.#handOut(msg))
  }

  #handOut(msg: JsMsg): Delivery {
    this.#outstanding.add(msg)
    const info = msg.info
    let settled = false
    return {
      seq: info.streamSequence,
      data: msg.data,
      deliveryCount: info.deliveryCount,
      ack: async () => {
        if (settled) return
        settled = true
        this.#outstanding.delete(msg)
        try {
          // ackAck: the server answers once it has recorded the ack (a plain ack is fire-and-forget).
          await this.#watch.guard(() => msg.ackAck(), 'the ack')
        } catch (err) {
          throw toBrokerError(err, 'the ack', { seq: info.streamSequence })
        }
      },
      nak: (delayMs) => {
        if (settled) return
        settled = true
        this.#outstanding.delete(msg)
        // Fire-and-forget, as the contract's nak is: if it is lost, ack_wait redelivers instead.
        giveBack(msg, delayMs !== undefined && delayMs > 0 ? delayMs : undefined)
      },
    }
  }
}

function giveBack(msg: JsMsg, delayMs?: number): void {
  try {
    msg.nak(delayMs)
  } catch {
    // The connection is closed: the server redelivers after ack_wait.
  }
}

function abortError(signal: AbortSignal | undefined): DOMException {
  const error = new DOMException('Waiting for the next delivery was aborted', 'AbortError')
  if (signal?.reason !== undefined) Object.defineProperty(error, 'cause', { value: signal.reason })
  return error
}
