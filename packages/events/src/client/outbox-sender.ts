/**
 * Forwards the outbox to the broker in the background: the oldest spooled events first, as batches
 * of consecutive events for one broker, each removed from the spool only once the broker answered
 * 202 (durable). A failure the broker may get over (no answer, 5xx, 429) is tried again after a
 * backoff (0.25 s doubling to 10 s, jittered) for as long as it lasts; order is kept throughout.
 *
 * A batch the broker refuses for its content (400, 413) is sent again one event at a time, so one
 * bad event cannot hold up the rest; an event refused on its own is dropped from the spool and
 * counted (`rejected`, with the reason in `lastError`): sending it again cannot succeed.
 */
import { isMeshletError, type MeshletError } from '@meshlet/core'
import type { IngressClient } from './ingress-client.js'
import type { OutboxSpool } from './outbox-spool.js'
import { BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE } from '../codec/index.js'
import { spooledEvent } from './spooled-event.js'

export interface OutboxSenderOptions {
  spool: OutboxSpool
  ingress: IngressClient
  /** Most events per batch. Default 100. */
  batchEvents?: number
  /** Most bytes of events per batch. Default 160 KiB (the ingress takes 4 × its 64 KiB event limit). */
  batchBytes?: number
  random?: () => number
}

export const SEND_RETRY_MIN = 250
export const SEND_RETRY_MAX = 10_000

export interface OutboxSenderStatus {
  /** Events the broker took from the outbox. */
  forwarded: number
  /** Events the broker refused for their content, dropped from the outbox. */
  rejected: number
  /** The last failure, while the broker is away or since the last refusal. */
  lastError: string | undefined
}

export class OutboxSender {
  readonly #o: Required<Omit<OutboxSenderOptions, 'random'>> & { random: () => number }
  readonly #stop = new AbortController()
  readonly #done: Promise<void>
  #status: OutboxSenderStatus = { forwarded: 0, rejected: 0, lastError: undefined }
  #drainWaiters: (() => void)[] = []
  /** Ends the wait for a spooled event (close() calls it). */
  #wake: () => void = () => {}

  constructor(options: OutboxSenderOptions) {
    this.#o = { batchEvents: 100, batchBytes: 160 * 1024, random: Math.random, ...options }
    this.#done = this.#run()
  }

  status(): OutboxSenderStatus {
    return { ...this.#status }
  }

  /** Resolves once the spool is empty (at once when it is). */
  drained(): Promise<void> {
    if (this.#o.spool.depth === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  /** Stops after the batch in flight (what it does not ack stays spooled for the next process). */
  async close(): Promise<void> {
    this.#stop.abort()
    this.#wake()
    await this.#done
  }

  async #run(): Promise<void> {
    const { spool } = this.#o
    const signal = this.#stop.signal
    let wait = SEND_RETRY_MIN
    while (!signal.aborted) {
      if (spool.depth === 0) {
        for (const w of this.#drainWaiters.splice(0)) w()
        await new Promise<void>((resolve) => {
          this.#wake = resolve
          void spool.whenNotEmpty().then(resolve)
        })
        continue
      }
      const records = spool.peek(this.#o.batchEvents, this.#o.batchBytes).map(spooledEvent)
      // One batch goes to one broker: the leading run of events for the oldest one's broker.
      const broker = records[0]!.broker
      const run = records.findIndex((e) => e.broker !== broker)
      const batch = run < 0 ? records : records.slice(0, run)
      try {
        await this.#send(broker, batch.map((e) => e.json))
        await spool.ack(batch.length)
        this.#status.forwarded += batch.length
        wait = SEND_RETRY_MIN
      } catch (err) {
        if (signal.aborted) break
        if (isMeshletError(err) && !err.retryable) {
          await this.#oneByOne(broker, batch.map((e) => e.json), err)
          continue
        }
        this.#status.lastError = (err as Error).message
        await sleep(Math.round(wait * (0.5 + this.#o.random())), signal)
        wait = Math.min(SEND_RETRY_MAX, wait * 2)
      }
    }
  }

  /** After a refused batch: each event alone; a refused one is dropped, a transient failure ends the round. */
  async #oneByOne(broker: string, events: Uint8Array[], batchError: MeshletError): Promise<void> {
    if (events.length === 1) return this.#drop(batchError)
    for (const json of events) {
      try {
        await this.#o.ingress.send(broker, { headers: { 'content-type': STRUCTURED_CONTENT_TYPE }, body: json }, this.#stop.signal)
        await this.#o.spool.ack(1)
        this.#status.forwarded++
      } catch (err) {
        if (isMeshletError(err) && !err.retryable && !this.#stop.signal.aborted) await this.#drop(err)
        else return
      }
    }
  }

  async #drop(err: MeshletError): Promise<void> {
    await this.#o.spool.ack(1)
    this.#status.rejected++
    this.#status.lastError = `dropped an event the broker refused: ${err.message}`
  }

  /** A batch is a JSON array of events in the structured format (HTTP binding 3.3), so spooled JSON joins as is. */
  #send(broker: string, events: Uint8Array[]): Promise<void> {
    const parts: Uint8Array[] = [OPEN]
    events.forEach((e, i) => parts.push(...(i === 0 ? [e] : [COMMA, e])))
    parts.push(CLOSE)
    return this.#o.ingress.send(broker, { headers: { 'content-type': BATCH_CONTENT_TYPE }, body: Buffer.concat(parts) }, this.#stop.signal)
  }
}

const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
