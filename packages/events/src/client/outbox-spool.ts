/**
 * The publisher's outbox on disk: a bounded, ordered spool of records that survives a crash.
 *
 * Contract:
 * - `append(records)` resolves only once the records are written and fsynced (appends made while a
 *   write is in flight are written and synced together, one fsync for the group). It rejects with
 *   MESHLET_ERR_BROKER_UNAVAILABLE, saying the spool is full, when the records do not fit in
 *   `maxBytes` (counted over records not yet acked, framing included); nothing is written then.
 * - Records are handed out (`peek`) in append order and stay until `ack(n)` removes the first n.
 * - `open` resumes what a previous process left: every record fsynced and not acked. A record cut
 *   short by a crash (never acknowledged to its publisher) is dropped and its file truncated there.
 * - The acked position is written without fsync: after a crash a few acked records may be handed
 *   out again (at-least-once: the broker's consumers tell duplicates by (source, id)).
 * - One process per directory: a lock file names the owner; a lock left by a dead process is taken.
 *
 * Files: `segment-<n>.log` (records `u32 length | u32 crc32 | payload`, big-endian), `acked`
 * (`<segment> <offset>`: everything before it is acked), `lock` (the owner's pid). A segment is
 * deleted once all its records are acked and it is no longer appended to. All unacked records are
 * also held in memory (at most `maxBytes`), so handing them out reads no file.
 */
import { open as openFile, mkdir, readdir, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { ErrorCodes, MeshletError } from '@meshlet/core'

const HEADER = 8
const SEGMENT_FILE = /^segment-(\d{12})\.log$/

export interface OutboxSpoolOptions {
  /** Most bytes of unacked records (framing included). */
  maxBytes: number
  /** A segment is closed and a new one begun past this size. Default min(8 MiB, maxBytes / 4), at least 64 KiB. */
  segmentBytes?: number
}

interface SpooledRecord {
  readonly payload: Uint8Array
  readonly segment: number
  /** Offset just past this record in its segment. */
  readonly end: number
}

interface PendingAppend {
  readonly records: readonly Uint8Array[]
  readonly bytes: number
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

export class OutboxSpool {
  readonly dir: string
  readonly #maxBytes: number
  readonly #segmentBytes: number
  /** Unacked records, oldest first; `#head` indexes the oldest (the array is compacted now and then). */
  #records: SpooledRecord[] = []
  #head = 0
  /** Bytes of unacked records plus those being written. */
  #bytes = 0
  #active: { n: number; fd: FileHandle; size: number } | undefined
  #nextSegment: number
  /** Segments on disk with unacked records or being appended to, oldest first. */
  #segments: number[]
  #pending: PendingAppend[] = []
  #writing: Promise<void> | undefined
  #ackWrite: Promise<void> = Promise.resolve()
  #waiters: (() => void)[] = []
  #closed = false

  private constructor(dir: string, options: OutboxSpoolOptions, segments: number[], nextSegment: number) {
    this.dir = dir
    this.#maxBytes = options.maxBytes
    this.#segmentBytes = options.segmentBytes ?? Math.max(64 * 1024, Math.min(8 * 1024 * 1024, Math.floor(options.maxBytes / 4)))
    this.#segments = segments
    this.#nextSegment = nextSegment
  }

  /** Opens (creating if needed) the spool in `dir`, locks it, and loads what is left in it. */
  static async open(dir: string, options: OutboxSpoolOptions): Promise<OutboxSpool> {
    await mkdir(dir, { recursive: true })
    await takeLock(dir)
    const acked = await readAcked(dir)
    const numbers = (await readdir(dir)).map((f) => SEGMENT_FILE.exec(f)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b)
    const spool = new OutboxSpool(dir, options, [], Math.max(acked.segment + 1, (numbers.at(-1) ?? 0) + 1))
    for (const n of numbers) {
      if (n < acked.segment) {
        await unlink(segmentPath(dir, n)).catch(() => undefined)
        continue
      }
      const records = await readSegment(dir, n)
      const left = records.filter((r) => n > acked.segment || r.end > acked.offset)
      if (left.length === 0) {
        await unlink(segmentPath(dir, n)).catch(() => undefined)
        continue
      }
      spool.#segments.push(n)
      for (const r of left) {
        spool.#records.push(r)
        spool.#bytes += r.payload.length + HEADER
      }
    }
    return spool
  }

  /** Records spooled and not yet acked. */
  get depth(): number {
    return this.#records.length - this.#head
  }

  /** Bytes they take, framing included. */
  get bytes(): number {
    return this.#bytes
  }

  get maxBytes(): number {
    return this.#maxBytes
  }

  /** Writes the records durably, in order after every earlier append; see the contract above. */
  append(records: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `The outbox at ${this.dir} is closed; publish before close().`))
    const bytes = records.reduce((n, r) => n + r.length + HEADER, 0)
    if (this.#bytes + bytes > this.#maxBytes) {
      return Promise.reject(
        new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `The broker is unavailable and the outbox at ${this.dir} is full (${this.#bytes} of ${this.#maxBytes} bytes spooled, ${this.depth} events); the event was not stored. Raise outboxMaxBytes or bring the broker back.`, {
          details: { outbox: this.dir, bytes: this.#bytes, maxBytes: this.#maxBytes, depth: this.depth },
        }),
      )
    }
    this.#bytes += bytes
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ records, bytes, resolve, reject })
      this.#writing ??= this.#writeLoop()
    })
  }

  /** The oldest unacked records, in order: at most `maxCount`, and at most `maxBytes` of payload unless the first alone is larger. */
  peek(maxCount: number, maxBytes: number): Uint8Array[] {
    const out: Uint8Array[] = []
    let size = 0
    for (let i = this.#head; i < this.#records.length && out.length < maxCount; i++) {
      const p = this.#records[i]!.payload
      if (out.length > 0 && size + p.length > maxBytes) break
      out.push(p)
      size += p.length
    }
    return out
  }

  /** Resolves once there is a record to peek (at once when there is one), or the spool closes. */
  whenNotEmpty(): Promise<void> {
    if (this.depth > 0 || this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Removes the `count` oldest records (delivered, or refused for good). */
  async ack(count: number): Promise<void> {
    const n = Math.min(count, this.depth)
    if (n === 0) return
    const last = this.#records[this.#head + n - 1]!
    for (let i = this.#head; i < this.#head + n; i++) this.#bytes -= this.#records[i]!.payload.length + HEADER
    this.#head += n
    if (this.#head > 1024 && this.#head * 2 > this.#records.length) {
      this.#records = this.#records.slice(this.#head)
      this.#head = 0
    }
    const oldestLeft = this.#records[this.#head]?.segment ?? this.#active?.n ?? last.segment + 1
    const done = this.#segments.filter((s) => s < oldestLeft && s !== this.#active?.n)
    this.#segments = this.#segments.filter((s) => !done.includes(s))
    // Position first, then deletions: a crash between them leaves files that open() deletes.
    const position = `${last.segment} ${last.end}\n`
    this.#ackWrite = this.#ackWrite.then(async () => {
      await writeFile(join(this.dir, 'acked.tmp'), position)
      await rename(join(this.dir, 'acked.tmp'), join(this.dir, 'acked'))
      for (const s of done) await unlink(segmentPath(this.dir, s)).catch(() => undefined)
    })
    await this.#ackWrite
  }

  /** Waits for writes in flight, then releases the files and the lock; later appends reject. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const w of this.#waiters.splice(0)) w()
    await this.#writing
    await this.#ackWrite.catch(() => undefined)
    await this.#active?.fd.close()
    this.#active = undefined
    await unlink(join(this.dir, 'lock')).catch(() => undefined)
  }

  /** Writes every pending group: one write and one fsync per group, in order; then hands the records out. */
  async #writeLoop(): Promise<void> {
    while (this.#pending.length > 0) {
      const group = this.#pending.splice(0)
      try {
        const active = await this.#segmentFor()
        const start = active.size
        const records: SpooledRecord[] = []
        const frames: Uint8Array[] = []
        let offset = start
        for (const g of group) {
          for (const payload of g.records) {
            const header = Buffer.allocUnsafe(HEADER)
            header.writeUInt32BE(payload.length, 0)
            header.writeUInt32BE(crc32(payload), 4)
            frames.push(header, payload)
            offset += HEADER + payload.length
            records.push({ payload, segment: active.n, end: offset })
          }
        }
        try {
          await active.fd.writev(frames, start)
          await active.fd.datasync()
        } catch (err) {
          // Leave no partial group behind: a later group starts where this one did.
          await active.fd.truncate(start).catch(() => undefined)
          throw err
        }
        active.size = offset
        this.#records.push(...records)
        for (const g of group) g.resolve()
        for (const w of this.#waiters.splice(0)) w()
      } catch (err) {
        for (const g of group) {
          this.#bytes -= g.bytes
          g.reject(new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, `The broker is unavailable and the event could not be written to the outbox at ${this.dir}: ${(err as Error).message}. The event was not stored.`, { cause: err }))
        }
      }
    }
    this.#writing = undefined
  }

  /** The segment to append to: the active one, or a new one once it is past its size. */
  async #segmentFor(): Promise<{ n: number; fd: FileHandle; size: number }> {
    if (this.#active !== undefined && this.#active.size < this.#segmentBytes) return this.#active
    if (this.#active !== undefined) {
      const full = this.#active
      this.#active = undefined
      await full.fd.close()
      // Records are in segment order: none left in `full` when the oldest unacked is past it.
      if ((this.#records[this.#head]?.segment ?? Infinity) > full.n) {
        this.#segments = this.#segments.filter((s) => s !== full.n)
        await unlink(segmentPath(this.dir, full.n)).catch(() => undefined)
      }
    }
    const n = this.#nextSegment++
    const fd = await openFile(segmentPath(this.dir, n), 'w')
    this.#segments.push(n)
    this.#active = { n, fd, size: 0 }
    return this.#active
  }
}

function segmentPath(dir: string, n: number): string {
  return join(dir, `segment-${String(n).padStart(12, '0')}.log`)
}

/** Where acking got to; the start of everything when unknown (records are then handed out again). */
async function readAcked(dir: string): Promise<{ segment: number; offset: number }> {
  try {
    const m = /^(\d+) (\d+)\n$/.exec(await readFile(join(dir, 'acked'), 'utf8'))
    if (m !== null) return { segment: Number(m[1]), offset: Number(m[2]) }
  } catch {
    // none yet
  }
  return { segment: 0, offset: 0 }
}

/** The segment's intact records; a torn or damaged record and everything after it is cut off. */
async function readSegment(dir: string, n: number): Promise<SpooledRecord[]> {
  const path = segmentPath(dir, n)
  const buf = await readFile(path)
  const out: SpooledRecord[] = []
  let at = 0
  while (at + HEADER <= buf.length) {
    const length = buf.readUInt32BE(at)
    const end = at + HEADER + length
    if (end > buf.length) break
    const payload = buf.subarray(at + HEADER, end)
    if (crc32(payload) !== buf.readUInt32BE(at + 4)) break
    out.push({ payload: Uint8Array.from(payload), segment: n, end })
    at = end
  }
  if (at < buf.length) {
    const fd = await openFile(path, 'r+')
    try {
      await fd.truncate(at)
      await fd.datasync()
    } finally {
      await fd.close()
    }
  }
  return out
}

/** Takes `<dir>/lock` for this process, or fails naming the live process that holds it. */
async function takeLock(dir: string): Promise<void> {
  const path = join(dir, 'lock')
  for (let tries = 0; tries < 2; tries++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' })
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim())
    if (Number.isInteger(owner) && owner > 0 && (owner === process.pid || isAlive(owner))) {
      const who = owner === process.pid ? 'another events() of this process' : `process ${owner}`
      throw new MeshletError(ErrorCodes.CONFIG_INVALID, `The outbox directory ${dir} is in use by ${who}; give each publisher an outbox directory of its own (or close the other first).`, { details: { outbox: dir, owner } })
    }
    await unlink(path).catch(() => undefined)
  }
  throw new MeshletError(ErrorCodes.CONFIG_INVALID, `Could not lock the outbox directory ${dir} (another process keeps taking it); give each publishing process an outbox directory of its own.`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
