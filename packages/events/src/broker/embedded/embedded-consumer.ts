/**
 * The durable consumer of one trigger on one broker's log. It outlives the TriggerConsumer handles
 * `attach` gives out: closing a handle leaves unsettled deliveries pending, and the next handle
 * hands them out again (a late ack from the old handle still counts).
 *
 * - Position: the committed cursor is the lowest seq not acked; seqs acked above it (acks arrive in
 *   any order) are kept as ranges, bounded by maxInFlight. Both go to the cursor file after every
 *   ack (group-committed: one atomic file replace covers every ack made meanwhile, and such writes
 *   start at most every ACK_COMMIT_INTERVAL_MS), and `ack()` resolves after that write, so an
 *   acked event is never handed out again, even after a crash. An ack frees its place in the
 *   window at once, before it is durable.
 * - Memory: at most maxInFlight pending deliveries plus one read-ahead chunk, whatever the backlog.
 * - Waiting: a caught-up `next()` waits for the log's append notification; nothing polls.
 * - deliveryCount after a restart: the file also records a bound below which every seq handed out
 *   lies, reserved ahead of the hand-outs; an unacked seq below it counts as handed out once before.
 *   The bound runs ahead of what was really handed out, so after a crash a few events that were never
 *   handed out can arrive with deliveryCount 2 (never the other way round: a redelivery never shows 1).
 */
import { ErrorCodes, MeshletError } from '@meshlet/core'
import type { ConsumerOptions, Delivery, TriggerConsumer } from '../broker-backend.js'
import { AckedSet } from './acked-set.js'
import { readCursor, removeCursor, writeCursor, type CursorState } from './cursor-store.js'
import { GroupCommit } from './group-commit.js'
import type { ReadPosition, SegmentLog } from './segment-log.js'
import type { SegmentRecord } from './segment-file.js'

export const DEFAULT_MAX_IN_FLIGHT = 256
export const DEFAULT_ACK_WAIT_MS = 60_000
/** Bytes read from the log per read-ahead. */
const READ_AHEAD_BYTES = 256 * 1024
/**
 * The shortest time between the starts of two cursor writes for acks. A write is several fs calls
 * and an fsync or two; back to back they cost the event loop more than the deliveries they
 * record. Spaced, each write covers more acks, and only the acks' durability waits (up to this
 * long), not the deliveries: the first ack after a quiet spell is written at once.
 */
const ACK_COMMIT_INTERVAL_MS = 5

export interface EmbeddedConsumerOptions {
  readonly log: SegmentLog
  readonly cursorFile: string
  /** `namespace/name/trigger`, for messages. */
  readonly label: string
  readonly fsync: boolean
  /** Called after each cursor write with the durable cursor (compaction follows it). */
  readonly onCommitted: (cursor: number) => void
}

interface Pending {
  readonly seq: number
  readonly data: Uint8Array
  /** Hand-outs so far. */
  count: number
  /** Which hand-out a nak or an ackWait expiry belongs to; stale ones are ignored. */
  generation: number
  state: 'out' | 'delayed' | 'ready'
  timer: NodeJS.Timeout | undefined
}

interface Waiter {
  readonly resolve: (delivery: Delivery) => void
  readonly reject: (err: unknown) => void
  readonly signal: AbortSignal | undefined
  readonly onAbort: (() => void) | undefined
}

interface Handle {
  closed: boolean
}

export class EmbeddedConsumer {
  readonly #options: EmbeddedConsumerOptions
  readonly #log: SegmentLog
  readonly #acked: AckedSet
  readonly #writer: GroupCommit<null>
  /** Unacked seqs below this were handed out before this process opened the consumer. */
  readonly #previouslyHandedOutBelow: number
  #durableCursor: number
  /** Durable: hand-outs are allowed below it. */
  #reservedBelow: number
  /** What the next cursor write reserves. */
  #reserveTarget: number
  #reserving = false
  #handedOutBelow: number
  readonly #position: ReadPosition
  #buffer: SegmentRecord[] = []
  #bufferAt = 0
  #reading = false
  readonly #pending = new Map<number, Pending>()
  #ready: Pending[] = []
  #waiters: Waiter[] = []
  #handle: Handle | undefined
  #maxInFlight = DEFAULT_MAX_IN_FLIGHT
  #ackWait = DEFAULT_ACK_WAIT_MS
  #stopped = false
  readonly #unsubscribe: () => void
  /** The cursor write the acks made now will be covered by, while it waits for its turn. */
  #ackCommit: { promise: Promise<void>; submit: () => void; cancel: () => void } | undefined
  #lastAckCommitAt = Number.NEGATIVE_INFINITY

  private constructor(options: EmbeddedConsumerOptions, state: CursorState) {
    this.#options = options
    this.#log = options.log
    this.#acked = new AckedSet(state.cursor, state.acked)
    this.#durableCursor = state.cursor
    this.#previouslyHandedOutBelow = state.handedOutBelow
    this.#reservedBelow = state.handedOutBelow
    this.#reserveTarget = state.handedOutBelow
    this.#handedOutBelow = state.cursor
    this.#position = { seq: state.cursor }
    this.#writer = new GroupCommit({ commit: () => this.#writeState(), maxItems: Number.MAX_SAFE_INTEGER })
    this.#unsubscribe = this.#log.onAppend(() => {
      if (this.#waiters.length > 0) this.#pump()
    })
  }

  /**
   * Loads the trigger's cursor file, or creates one at the log's end (durably, before it resolves:
   * every event appended after that is the trigger's).
   */
  static async open(options: EmbeddedConsumerOptions): Promise<EmbeddedConsumer> {
    let state = await readCursor(options.cursorFile)
    if (state === undefined) {
      const end = options.log.nextSeq
      state = { cursor: end, acked: [], handedOutBelow: end }
      await writeCursor(options.cursorFile, state, options.fsync)
    }
    return new EmbeddedConsumer(options, state)
  }

  /** The cursor as last written: events from it on are still needed. */
  get durableCursor(): number {
    return this.#durableCursor
  }

  get attached(): boolean {
    return this.#handle !== undefined
  }

  /** A handle for the dispatcher; deliveries left pending by an earlier handle come first. */
  attach(options: ConsumerOptions = {}): TriggerConsumer {
    if (this.#handle !== undefined) throw new Error('attach() while a handle is open')
    this.#maxInFlight = positiveInteger(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight')
    this.#ackWait = positiveInteger(options.ackWait, DEFAULT_ACK_WAIT_MS, 'ackWait')
    const handle: Handle = { closed: false }
    this.#handle = handle
    this.#ready = [...this.#pending.values()].sort((a, b) => a.seq - b.seq)
    for (const p of this.#ready) p.state = 'ready'
    return {
      next: (signal) => this.#next(handle, signal),
      lag: () => Promise.resolve(this.#log.nextSeq - this.#acked.cursor - this.#acked.aboveCursor),
      close: () => this.#detach(handle),
    }
  }

  /** Stops for good (broker closing, trigger deleted): no more hand-outs, acks reject. Writes the state first. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    if (this.#handle !== undefined) await this.#detach(this.#handle)
    this.#stopped = true
    this.#unsubscribe()
    this.#submitAckCommit()
    // A clean stop records exactly what was handed out, so a restart counts no extra redeliveries.
    this.#reserveTarget = Math.max(this.#handedOutBelow, this.#previouslyHandedOutBelow)
    await this.#writer.submit(null).catch(() => {})
  }

  /** Stops and removes the cursor file. */
  async delete(): Promise<void> {
    await this.stop()
    await removeCursor(this.#options.cursorFile, this.#options.fsync)
  }

  #next(handle: Handle, signal: AbortSignal | undefined): Promise<Delivery> {
    if (handle.closed) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `the consumer of ${this.#options.label} is closed; open a new one with consumer()`))
    if (signal?.aborted === true) return Promise.reject(abortError())
    // The common case while draining: a delivery is there at once, and needs no waiter or abort listener.
    if (this.#waiters.length === 0) {
      const p = this.#available()
      if (p !== undefined) {
        const delivery = this.#handOut(p)
        if (this.#bufferAt >= this.#buffer.length) this.#readAhead()
        return Promise.resolve(delivery)
      }
    }
    return new Promise<Delivery>((resolve, reject) => {
      const onAbort = signal === undefined ? undefined : () => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(abortError())
      }
      const waiter: Waiter = { resolve, reject, signal, onAbort }
      if (onAbort !== undefined) signal!.addEventListener('abort', onAbort, { once: true })
      this.#waiters.push(waiter)
      this.#pump()
    })
  }

  /** Hands out what it can to the waiters. */
  #pump(): void {
    while (this.#waiters.length > 0) {
      const p = this.#available()
      if (p === undefined) return
      const waiter = this.#waiters.shift()!
      if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort)
      waiter.resolve(this.#handOut(p))
    }
    if (this.#bufferAt >= this.#buffer.length) this.#readAhead()
  }

  /**
   * What may be handed out next, in this order: deliveries to redeliver, then the log (within
   * maxInFlight and the reserved bound). Undefined when nothing may be now; what would make
   * something available (a read-ahead, a reservation) is started then.
   */
  #available(): Pending | undefined {
    const again = this.#nextReady()
    if (again !== undefined) return again
    if (this.#pending.size >= this.#maxInFlight) return undefined
    const record = this.#nextBuffered()
    if (record === undefined) {
      this.#readAhead()
      return undefined
    }
    if (record.seq >= this.#reservedBelow) {
      this.#bufferAt--
      this.#reserve()
      return undefined
    }
    const count = record.seq < this.#previouslyHandedOutBelow ? 1 : 0
    const p: Pending = { seq: record.seq, data: record.data, count, generation: 0, state: 'out', timer: undefined }
    this.#pending.set(p.seq, p)
    return p
  }

  #handOut(p: Pending): Delivery {
    p.count++
    const generation = ++p.generation
    p.state = 'out'
    p.timer = setTimeout(() => this.#redeliver(p, generation), this.#ackWait)
    if (p.seq >= this.#handedOutBelow) this.#handedOutBelow = p.seq + 1
    // Reserve ahead in the background, so hand-outs rarely wait for a cursor write.
    if (this.#reservedBelow - this.#handedOutBelow < this.#reserveStep / 2) this.#reserve()
    return {
      seq: p.seq,
      data: p.data,
      deliveryCount: p.count,
      ack: () => this.#ack(p.seq),
      nak: (delayMs) => this.#nak(p, generation, delayMs),
    }
  }

  #ack(seq: number): Promise<void> {
    if (this.#stopped) return Promise.reject(new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `the consumer of ${this.#options.label} is stopped (broker closed or trigger deleted); the ack was not recorded and the event will be handed out again`))
    const p = this.#pending.get(seq)
    if (p !== undefined) {
      clearTimeout(p.timer)
      this.#pending.delete(seq)
    }
    this.#acked.add(seq)
    const durable = this.#ackDurable()
    if (p !== undefined && this.#waiters.length > 0) this.#pump()
    return durable
  }

  /** Resolves once a cursor write that started after now is done: one promise for every ack until that write starts. */
  #ackDurable(): Promise<void> {
    if (this.#ackCommit !== undefined) return this.#ackCommit.promise
    let resolve!: () => void
    let reject!: (err: unknown) => void
    const promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    const submit = (): void => {
      if (this.#ackCommit?.promise !== promise) return
      this.#ackCommit = undefined
      this.#lastAckCommitAt = performance.now()
      this.#writer.submit(null).then(resolve, reject)
    }
    const wait = this.#lastAckCommitAt + ACK_COMMIT_INTERVAL_MS - performance.now()
    let cancel: () => void
    if (wait > 0) {
      const timer = setTimeout(submit, wait)
      cancel = () => clearTimeout(timer)
    } else {
      const immediate = setImmediate(submit)
      cancel = () => clearImmediate(immediate)
    }
    this.#ackCommit = { promise, submit, cancel }
    return promise
  }

  /** Hands the waiting ack write to the writer now (closing: nothing may be written after the writer is flushed). */
  #submitAckCommit(): void {
    const commit = this.#ackCommit
    if (commit === undefined) return
    commit.cancel()
    commit.submit()
  }

  #nak(p: Pending, generation: number, delayMs: number | undefined): void {
    if (this.#pending.get(p.seq) !== p || p.generation !== generation || p.state !== 'out') return
    clearTimeout(p.timer)
    const delay = delayMs === undefined || !(delayMs > 0) ? 0 : delayMs
    if (delay === 0 || this.#handle === undefined) {
      this.#makeReady(p)
    } else {
      p.state = 'delayed'
      p.timer = setTimeout(() => this.#makeReady(p), delay)
    }
  }

  /** ackWait passed without an ack or nak. */
  #redeliver(p: Pending, generation: number): void {
    if (this.#pending.get(p.seq) === p && p.generation === generation && p.state === 'out') this.#makeReady(p)
  }

  #makeReady(p: Pending): void {
    p.timer = undefined
    p.state = 'ready'
    this.#ready.push(p)
    this.#pump()
  }

  #nextReady(): Pending | undefined {
    while (this.#ready.length > 0) {
      const p = this.#ready.shift()!
      // Acked meanwhile (a late ack from an earlier hand-out) or already handed out again.
      if (this.#pending.get(p.seq) === p && p.state === 'ready') return p
    }
    return undefined
  }

  #nextBuffered(): SegmentRecord | undefined {
    while (this.#bufferAt < this.#buffer.length) {
      const record = this.#buffer[this.#bufferAt++]!
      // After a restart, seqs acked out of order before it are skipped.
      if (!this.#acked.has(record.seq)) return record
    }
    return undefined
  }

  #readAhead(): void {
    if (this.#reading || this.#stopped || this.#bufferAt < this.#buffer.length) return
    if (this.#position.seq >= this.#log.nextSeq) return // the append notification calls #pump
    this.#reading = true
    this.#log.read(this.#position, READ_AHEAD_BYTES).then(
      (records) => {
        this.#reading = false
        this.#buffer = records
        this.#bufferAt = 0
        if (this.#waiters.length > 0) this.#pump()
      },
      (err: unknown) => {
        this.#reading = false
        this.#failWaiters(err)
      },
    )
  }

  get #reserveStep(): number {
    return Math.max(1024, this.#maxInFlight * 4)
  }

  #reserve(): void {
    if (this.#reserving || this.#stopped) return
    this.#reserving = true
    this.#reserveTarget = Math.max(this.#reserveTarget, this.#handedOutBelow, this.#position.seq) + this.#reserveStep
    this.#writer.submit(null).then(
      () => {
        this.#reserving = false
        if (this.#waiters.length > 0) this.#pump()
      },
      (err: unknown) => {
        // The dispatcher's next call to next() tries again.
        this.#reserving = false
        this.#failWaiters(err)
      },
    )
  }

  async #writeState(): Promise<void> {
    const state: CursorState = {
      cursor: this.#acked.cursor,
      acked: this.#acked.ranges(),
      handedOutBelow: Math.max(this.#reserveTarget, this.#handedOutBelow),
    }
    try {
      await writeCursor(this.#options.cursorFile, state, this.#options.fsync)
    } catch (err) {
      throw new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `could not write the cursor of ${this.#options.label} to ${this.#options.cursorFile}: ${(err as Error).message}`, { cause: err })
    }
    this.#reservedBelow = state.handedOutBelow
    if (state.cursor !== this.#durableCursor) {
      this.#durableCursor = state.cursor
      this.#options.onCommitted(state.cursor)
    }
  }

  #failWaiters(err: unknown): void {
    for (const w of this.#waiters.splice(0)) {
      if (w.onAbort !== undefined) w.signal!.removeEventListener('abort', w.onAbort)
      w.reject(err)
    }
  }

  async #detach(handle: Handle): Promise<void> {
    if (handle.closed) return
    handle.closed = true
    if (this.#handle === handle) this.#handle = undefined
    this.#failWaiters(new MeshletError(ErrorCodes.CLOSED, `the consumer of ${this.#options.label} was closed while next() waited`))
    // Pending deliveries wait for the next handle, which hands them out again at once.
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.timer = undefined
    }
    this.#submitAckCommit()
    await this.#writer.flushed()
  }
}

function abortError(): DOMException {
  return new DOMException('next() was aborted', 'AbortError')
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `consumer option ${name} must be a positive number, got ${String(value)}`, { details: { field: name, value } })
  return value
}
