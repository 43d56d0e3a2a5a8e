/**
 * publish(): completes and encodes the events, then sends them to the broker ingress of the mesh's
 * control endpoint — one event in structured mode, a list as one batch.
 *
 * Without an outbox, a failure the broker may get over (no answer, 5xx, 429) is tried again with
 * backoff (0.1 s doubling, jittered, at most 2 s apart) until `publishTimeout`; then the call fails
 * with MESHLET_ERR_BROKER_UNAVAILABLE naming the broker, the attempts and the last cause. A refusal
 * of the events themselves (400, 413) fails at once with the ingress's code.
 *
 * With an outbox, such a failure spools the events instead (fsynced before publish resolves), and
 * while the outbox holds anything every publish goes there too, behind it, so a publisher's events
 * reach the broker in the order it published them; the OutboxSender forwards them.
 */
import { ErrorCodes, isMeshletError, MeshletError, type Mesh } from '@meshlet/core'
import pRetry from 'p-retry'
import { encodeBatch, encodeStructured } from '../codec/index.js'
import { DEFAULT_BROKER } from '../resources/event-specs.js'
import { IngressClient, type IngressMessage } from './ingress-client.js'
import { OutboxSender, type OutboxSenderStatus } from './outbox-sender.js'
import { OutboxSpool } from './outbox-spool.js'
import { publishedEvent, type PublishableEvent } from './published-event.js'
import { spoolRecord } from './spooled-event.js'

export interface PublishOptions {
  /** The broker's name in the mesh's namespace. Default `default`. */
  broker?: string
  /** Stops retrying (without an outbox) and fails with MESHLET_ERR_CANCELLED. */
  signal?: AbortSignal
}

export interface OutboxStatus extends OutboxSenderStatus {
  dir: string
  /** Events spooled, not yet taken by the broker. */
  depth: number
  bytes: number
  maxBytes: number
  /** Why the outbox could not be opened (every publish fails with it), else undefined. */
  openError: string | undefined
}

export interface PublisherOptions {
  mesh: Mesh
  maxEventSize: number
  publishTimeout: number
  outbox: { dir: string; maxBytes: number } | undefined
}

const BROKER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
/** Longest wait for one ingress answer; publishTimeout bounds the whole call. */
const ATTEMPT_TIMEOUT = 5_000

interface Outbox {
  spool: OutboxSpool
  sender: OutboxSender
}

export class Publisher {
  readonly #o: PublisherOptions
  readonly #ingress: IngressClient | undefined
  readonly #source: string
  /** The opened outbox; its promise never rejects (a failure to open is kept in `#openError`). */
  readonly #outbox: Promise<Outbox | undefined>
  #opened: Outbox | undefined
  #openError: MeshletError | undefined
  /** Publishes on their way into the outbox: later ones must queue behind them. */
  #spooling = 0

  constructor(options: PublisherOptions) {
    this.#o = options
    const control = options.mesh.controlEndpoint
    this.#source = `/${options.mesh.namespace}/${options.mesh.service}`
    if (control !== undefined) this.#ingress = new IngressClient({ url: control.url, token: control.token, namespace: options.mesh.namespace, timeout: Math.min(ATTEMPT_TIMEOUT, options.publishTimeout) })
    this.#outbox = options.outbox === undefined || this.#ingress === undefined ? Promise.resolve(undefined) : this.#openOutbox(options.outbox, this.#ingress)
  }

  async publish(input: PublishableEvent | readonly PublishableEvent[], options: PublishOptions): Promise<void> {
    const broker = options.broker ?? DEFAULT_BROKER
    if (typeof broker !== 'string' || !BROKER_NAME.test(broker)) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `publish(…, { broker }) must be a broker name (lower-case letters, digits and "-", at most 63), got ${JSON.stringify(broker)}.`)
    const ingress = this.#ingress
    if (ingress === undefined) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `Mesh "${this.#o.mesh.service}" has no control endpoint, so there is no broker to publish to; pass \`control\` (and its join token) to createMesh.`)
    const list = Array.isArray(input) ? (input as readonly PublishableEvent[]) : [input as PublishableEvent]
    if (list.length === 0) return
    const events = list.map((e) => publishedEvent(e, this.#source))
    const limits = { maxEventSize: this.#o.maxEventSize }
    const message: IngressMessage = Array.isArray(input) ? encodeBatch(events, limits) : encodeStructured(events[0]!, limits)
    const outbox = await this.#outbox
    if (this.#o.outbox !== undefined && outbox === undefined) throw this.#openError!
    if (outbox === undefined) return this.#sendRetrying(ingress, broker, message, options.signal)
    // One spool record per event, so the sender can batch across publishes.
    const records = () => events.map((e) => spoolRecord(broker, Buffer.from(encodeStructured(e, limits).body)))
    if (outbox.spool.depth > 0 || this.#spooling > 0) return this.#spool(outbox, records())
    try {
      await ingress.send(broker, message, options.signal)
    } catch (err) {
      if (!isMeshletError(err) || !err.retryable) throw err
      await this.#spool(outbox, records())
    }
  }

  async #spool(outbox: Outbox, records: Uint8Array[]): Promise<void> {
    this.#spooling++
    try {
      await outbox.spool.append(records)
    } finally {
      this.#spooling--
    }
  }

  async #sendRetrying(ingress: IngressClient, broker: string, message: IngressMessage, signal: AbortSignal | undefined): Promise<void> {
    const started = Date.now()
    let attempts = 0
    try {
      await pRetry(
        () => {
          attempts++
          return ingress.send(broker, message, signal)
        },
        { retries: 1000, minTimeout: 100, maxTimeout: 2_000, factor: 2, randomize: true, maxRetryTime: this.#o.publishTimeout, unref: true, ...(signal === undefined ? {} : { signal }), shouldRetry: ({ error }) => isMeshletError(error) && error.retryable },
      )
    } catch (err) {
      if (!isMeshletError(err, ErrorCodes.BROKER_UNAVAILABLE)) throw err
      const spent = Math.round((Date.now() - started) / 100) / 10
      throw new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `${err.message.replace(/; the event was not stored\.$/, '')}; gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${spent}s (publishTimeout ${this.#o.publishTimeout}ms). The event was not stored: publish it again later, or give events() an outbox.`, { cause: err, details: { ...err.details, attempts } })
    }
  }

  /** Resolves once the outbox is empty. */
  async flush(): Promise<void> {
    const outbox = await this.#outbox
    await outbox?.sender.drained()
  }

  outboxStatus(): OutboxStatus | null {
    const dir = this.#o.outbox?.dir
    if (dir === undefined) return null
    const o = this.#opened
    return {
      dir,
      depth: o?.spool.depth ?? 0,
      bytes: o?.spool.bytes ?? 0,
      maxBytes: this.#o.outbox!.maxBytes,
      ...(o?.sender.status() ?? { forwarded: 0, rejected: 0, lastError: undefined }),
      openError: this.#openError?.message,
    }
  }

  async close(): Promise<void> {
    const outbox = await this.#outbox
    if (outbox !== undefined) {
      await outbox.sender.close()
      await outbox.spool.close()
    }
    await this.#ingress?.close()
  }

  async #openOutbox(options: { dir: string; maxBytes: number }, ingress: IngressClient): Promise<Outbox | undefined> {
    try {
      const spool = await OutboxSpool.open(options.dir, { maxBytes: options.maxBytes })
      // The sender starts at once: what a previous process left is forwarded without a publish.
      this.#opened = { spool, sender: new OutboxSender({ spool, ingress }) }
      return this.#opened
    } catch (err) {
      this.#openError = isMeshletError(err) ? err : new MeshletError(ErrorCodes.CONFIG_INVALID, `Could not open the outbox at ${options.dir}: ${(err as Error).message}`, { cause: err })
      return undefined
    }
  }
}
