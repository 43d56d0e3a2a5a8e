import type { NatsConnection } from '@nats-io/transport-node'
import { brokerUnavailable } from './jetstream-errors.js'

/**
 * The NATS connection's state as the backend needs it. The client reconnects by itself (forever,
 * see jetstream-backend.ts) and would hold publishes in its buffer meanwhile; an append must not
 * wait out a reconnect, so while disconnected `guard` rejects at once, and work in flight when the
 * connection drops rejects then rather than at its timeout (its acks died with the socket; a
 * publish that did reach the stream is dropped as a duplicate when the caller sends it again).
 */
export class ConnectionWatch {
  #connected = true
  #closed = false
  /** The rejecters of the work in flight: a dropped connection fails them all at once. */
  readonly #inFlight = new Set<(err: Error) => void>()
  #waiters = new Set<{ resolve: () => void; reject: (err: unknown) => void }>()

  constructor(
    nc: NatsConnection,
    private readonly server: () => string,
  ) {
    void this.#watch(nc)
  }

  get connected(): boolean {
    return this.#connected && !this.#closed
  }

  /** Settles `work` as it settles, or rejects with BROKER_UNAVAILABLE as soon as the connection is down. */
  guard<T>(work: () => Promise<T>, doing: string): Promise<T> {
    if (!this.connected) return Promise.reject(this.#downError(doing))
    return new Promise<T>((resolve, reject) => {
      const fail = (err: Error): void => reject(err)
      this.#inFlight.add(fail)
      work().then(
        (value) => {
          this.#inFlight.delete(fail)
          resolve(value)
        },
        (err: unknown) => {
          this.#inFlight.delete(fail)
          reject(err)
        },
      )
    })
  }

  /** Resolves once connected (at once when connected now); rejects when the connection closes for good. */
  whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(this.#downError('waiting for the connection'))
    if (this.#connected) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (err: unknown) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      const onAbort = (): void => {
        this.#waiters.delete(waiter)
        reject(new DOMException('Waiting for the NATS connection was aborted', 'AbortError'))
      }
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiters.add(waiter)
    })
  }

  /** The connection is being closed by us: everything from now on is refused. */
  markClosed(): void {
    if (this.#closed) return
    this.#closed = true
    this.#failInFlight()
    for (const waiter of this.#waiters) waiter.reject(this.#downError('waiting for the connection'))
    this.#waiters.clear()
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.#connected = false
        this.#failInFlight()
      } else if (status.type === 'reconnect') {
        this.#connected = true
        for (const waiter of this.#waiters) waiter.resolve()
        this.#waiters.clear()
      }
    }
    // The status iterator ends when the connection is closed (by us, or given up by the client).
    this.markClosed()
  }

  #failInFlight(): void {
    const err = this.#downError('the operation')
    for (const fail of this.#inFlight) fail(err)
    this.#inFlight.clear()
  }

  #downError(doing: string): Error {
    const state = this.#closed ? 'closed' : 'disconnected (the client is reconnecting)'
    return brokerUnavailable(`The JetStream broker's NATS connection is ${state}; ${doing} did not happen: try again later.`, { server: this.server() })
  }
}
