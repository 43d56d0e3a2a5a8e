/**
 * The embedded broker backend (kind `embedded`): each broker is a directory
 * `<dir>/<namespace>/<name>/` holding its log (`segments/`, see segment-log.ts) and one cursor file
 * per trigger (`consumers/`, see cursor-store.ts). It runs inside the control endpoint process.
 *
 * Every broker found in `dir` is opened when the backend is created, so a damaged log refuses to
 * start (MESHLET_ERR_STORE_CORRUPT naming the file and offset) instead of failing later, and
 * compaction knows every trigger's cursor, including triggers no dispatcher has opened yet.
 *
 * One process at a time may use a directory: nothing here locks it (the control endpoint locks its
 * data directory, which holds this one).
 */
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ErrorCodes, MeshletError } from '@meshlet/core'
import type { BrokerBackend, BrokerRef, BrokerStats, ConsumerOptions, TriggerConsumer } from '../broker-backend.js'
import { cursorPath, listCursors, readCursor, removeCursor } from './cursor-store.js'
import { EmbeddedConsumer } from './embedded-consumer.js'
import { SegmentLog } from './segment-log.js'

export interface EmbeddedBackendOptions {
  /** The directory holding every broker's files; created if missing. */
  readonly dir: string
  /** A segment is sealed once the next batch would grow it past this. Default 64 MiB. */
  readonly segmentBytes?: number
  /** fsync before acknowledging appends and acks. Default true; false only for tests and benches that say so. */
  readonly fsync?: boolean
  /** Sealed segments are kept at least this long (ms) after their last record, even once every trigger is past them. Default: none. */
  readonly retention?: number
  /** The largest stored event (bytes); larger ones are refused with MESHLET_ERR_EVENT_TOO_LARGE. Default 1 MiB. */
  readonly maxEventBytes?: number
  /** Per broker: the newest events kept in memory so consumers that keep up never read the disk. Default 4 MiB. */
  readonly tailCacheBytes?: number
  /** Where recovery reports what it cut off. Default: stderr. */
  readonly warn?: (message: string) => void
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
const DEFAULT_TAIL_CACHE_BYTES = 4 * 1024 * 1024
/** Smaller segments would hold almost nothing but headers. */
const MIN_SEGMENT_BYTES = 1024
/** Kubernetes object names (RFC 1123 labels): no `/`, no `..`, so no path leaves the broker's directory. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

interface Broker {
  readonly ref: BrokerRef
  readonly dir: string
  readonly log: SegmentLog
  /** Consumers opened in this process. */
  readonly consumers: Map<string, Promise<EmbeddedConsumer>>
  /** Every trigger's cursor as last written, opened or not. */
  readonly cursors: Map<string, number>
  retentionTimer: NodeJS.Timeout | undefined
  compactedTo: number
}

/** Opens the embedded backend over `options.dir`, recovering every broker stored there. */
export async function createEmbeddedBackend(options: EmbeddedBackendOptions): Promise<BrokerBackend> {
  const backend = new EmbeddedBackend(options)
  await backend.openExisting()
  return backend
}

class EmbeddedBackend implements BrokerBackend {
  readonly kind = 'embedded'
  readonly #dir: string
  readonly #segmentBytes: number
  readonly #fsync: boolean
  readonly #retention: number | undefined
  readonly #maxEventBytes: number
  readonly #tailCacheBytes: number
  readonly #warn: (message: string) => void
  readonly #brokers = new Map<string, Promise<Broker>>()
  #closed = false

  constructor(options: EmbeddedBackendOptions) {
    if (typeof options.dir !== 'string' || options.dir === '') throw invalid('dir', options.dir, 'must be a directory path')
    this.#dir = options.dir
    this.#segmentBytes = sizeOption('segmentBytes', options.segmentBytes, DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES)
    this.#fsync = options.fsync ?? true
    if (options.retention !== undefined && !(Number.isFinite(options.retention) && options.retention >= 0)) throw invalid('retention', options.retention, 'must be a duration in milliseconds, 0 or more')
    this.#retention = options.retention
    this.#maxEventBytes = sizeOption('maxEventBytes', options.maxEventBytes, DEFAULT_MAX_EVENT_BYTES, 1)
    this.#tailCacheBytes = sizeOption('tailCacheBytes', options.tailCacheBytes, DEFAULT_TAIL_CACHE_BYTES, 0)
    this.#warn = options.warn ?? ((m) => void process.stderr.write(`warning: ${m}\n`))
  }

  async openExisting(): Promise<void> {
    for (const namespace of await subdirectories(this.#dir)) {
      if (!NAME.test(namespace)) continue
      for (const name of await subdirectories(join(this.#dir, namespace))) {
        if (NAME.test(name)) await this.#broker({ namespace, name })
      }
    }
  }

  async append(ref: BrokerRef, events: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) throw closedError()
    const key = brokerKey(ref)
    if (!Array.isArray(events)) throw new MeshletError(ErrorCodes.EVENT_INVALID, 'append() takes an array of events (Uint8Array each)')
    for (const [i, event] of events.entries()) {
      if (!(event instanceof Uint8Array)) throw new MeshletError(ErrorCodes.EVENT_INVALID, `event ${i} of the batch is not a Uint8Array (the event's JSON format, UTF-8)`, { details: { index: i } })
      if (event.length > this.#maxEventBytes) throw new MeshletError(ErrorCodes.EVENT_TOO_LARGE, `event ${i} of the batch is ${event.length} bytes, over the broker's limit of ${this.#maxEventBytes} (maxEventBytes)`, { details: { index: i, size: event.length, limit: this.#maxEventBytes } })
    }
    const broker = await this.#broker(ref, key)
    await broker.log.append(events)
    // With no trigger, nothing holds sealed segments but retention.
    if (broker.cursors.size === 0 && broker.log.segmentCount > 1) this.#compact(broker)
  }

  async consumer(ref: BrokerRef, trigger: string, options?: ConsumerOptions): Promise<TriggerConsumer> {
    if (this.#closed) throw closedError()
    checkName('trigger', trigger)
    const broker = await this.#broker(ref)
    let opening = broker.consumers.get(trigger)
    if (opening === undefined) {
      opening = EmbeddedConsumer.open({
        log: broker.log,
        cursorFile: cursorPath(join(broker.dir, 'consumers'), trigger),
        label: `${ref.namespace}/${ref.name}/${trigger}`,
        fsync: this.#fsync,
        onCommitted: (cursor) => {
          broker.cursors.set(trigger, cursor)
          this.#compact(broker)
        },
      })
      broker.consumers.set(trigger, opening)
      opening.then((c) => broker.cursors.set(trigger, c.durableCursor), () => broker.consumers.delete(trigger))
    }
    const consumer = await opening
    if (consumer.attached) throw new MeshletError(ErrorCodes.CONFLICT, `trigger ${trigger} of broker ${ref.namespace}/${ref.name} already has an open consumer; close it first (one consumer per trigger at a time)`, { details: { trigger } })
    return consumer.attach(options)
  }

  async deleteConsumer(ref: BrokerRef, trigger: string): Promise<void> {
    if (this.#closed) throw closedError()
    checkName('trigger', trigger)
    const broker = await this.#broker(ref)
    const opened = broker.consumers.get(trigger)
    broker.consumers.delete(trigger)
    broker.cursors.delete(trigger)
    if (opened !== undefined) await (await opened).delete()
    else await removeCursor(cursorPath(join(broker.dir, 'consumers'), trigger), this.#fsync)
    this.#compact(broker)
  }

  async deleteBroker(ref: BrokerRef): Promise<void> {
    if (this.#closed) throw closedError()
    const key = brokerKey(ref)
    const opening = this.#brokers.get(key)
    this.#brokers.delete(key)
    if (opening !== undefined) await this.#closeBroker(await opening.catch(() => undefined))
    await rm(join(this.#dir, ref.namespace, ref.name), { recursive: true, force: true })
  }

  async stats(ref: BrokerRef): Promise<BrokerStats> {
    if (this.#closed) throw closedError()
    const { events, bytes, nextSeq } = (await this.#broker(ref)).log.stats()
    return { events, bytes, nextSeq }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const brokers = await Promise.allSettled([...this.#brokers.values()])
    this.#brokers.clear()
    await Promise.all(brokers.map((b) => (b.status === 'fulfilled' ? this.#closeBroker(b.value) : undefined)))
  }

  #broker(ref: BrokerRef, key = brokerKey(ref)): Promise<Broker> {
    let opening = this.#brokers.get(key)
    if (opening === undefined) {
      opening = this.#openBroker(ref)
      this.#brokers.set(key, opening)
      opening.catch(() => this.#brokers.delete(key))
    }
    return opening
  }

  async #openBroker(ref: BrokerRef): Promise<Broker> {
    const dir = join(this.#dir, ref.namespace, ref.name)
    const log = await SegmentLog.open(join(dir, 'segments'), {
      label: `${ref.namespace}/${ref.name}`,
      segmentBytes: this.#segmentBytes,
      fsync: this.#fsync,
      tailCacheBytes: this.#tailCacheBytes,
      warn: this.#warn,
    })
    const cursors = new Map<string, number>()
    try {
      const consumersDir = join(dir, 'consumers')
      await mkdir(consumersDir, { recursive: true })
      for (const trigger of await listCursors(consumersDir)) {
        if (!NAME.test(trigger)) continue
        const state = await readCursor(cursorPath(consumersDir, trigger))
        if (state !== undefined) cursors.set(trigger, state.cursor)
      }
    } catch (err) {
      await log.close()
      throw err
    }
    const broker: Broker = { ref, dir, log, consumers: new Map(), cursors, retentionTimer: undefined, compactedTo: 0 }
    this.#compact(broker)
    return broker
  }

  /** Deletes the segments every trigger is past (and retention allows); never throws. */
  #compact(broker: Broker): void {
    if (this.#closed) return
    let cursor = broker.log.nextSeq
    for (const c of broker.cursors.values()) cursor = Math.min(cursor, c)
    if (cursor <= broker.compactedTo) return
    broker.compactedTo = cursor
    broker.log.compact(cursor, this.#retention).then(
      (retryAt) => {
        if (retryAt === undefined || broker.retentionTimer !== undefined || this.#closed) return
        broker.retentionTimer = setTimeout(() => {
          broker.retentionTimer = undefined
          broker.compactedTo = 0
          this.#compact(broker)
        }, Math.max(0, retryAt - Date.now()))
        broker.retentionTimer.unref()
      },
      (err: unknown) => this.#warn(`broker ${broker.ref.namespace}/${broker.ref.name}: compaction failed (it runs again later): ${(err as Error).message}`),
    )
  }

  async #closeBroker(broker: Broker | undefined): Promise<void> {
    if (broker === undefined) return
    clearTimeout(broker.retentionTimer)
    broker.retentionTimer = undefined
    const consumers = await Promise.allSettled([...broker.consumers.values()])
    await Promise.all(consumers.map((c) => (c.status === 'fulfilled' ? c.value.stop() : undefined)))
    await broker.log.close()
  }
}

function brokerKey(ref: BrokerRef): string {
  checkName('broker namespace', ref?.namespace)
  checkName('broker name', ref?.name)
  return `${ref.namespace}/${ref.name}`
}

function checkName(what: string, value: unknown): void {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new MeshletError(ErrorCodes.CONFIG_INVALID, `${what} ${JSON.stringify(value)} is not a valid name: lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit`, { details: { field: what, value } })
  }
}

function closedError(): MeshletError {
  return new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, 'the embedded broker backend is closed')
}

function invalid(field: string, value: unknown, rule: string): MeshletError {
  return new MeshletError(ErrorCodes.CONFIG_INVALID, `createEmbeddedBackend: ${field} ${rule}, got ${JSON.stringify(value)}`, { details: { field, value } })
}

function sizeOption(field: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min) throw invalid(field, value, `must be an integer of at least ${min} bytes`)
  return value
}

async function subdirectories(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}
