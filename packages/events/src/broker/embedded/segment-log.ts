/**
 * One broker's append-only log: a directory of segment files, the last one written to.
 *
 * - `append` resolves only after the fsync that covers its events (group commit: concurrent
 *   appends share one write and one fsync). A failed write is cut back off the file and fails only
 *   the appends of that batch, with MESHLET_ERR_BROKER_UNAVAILABLE; the log keeps working unless
 *   the cut itself fails, and then every later append fails until the broker is reopened.
 * - Readers see only durable records. The most recent ones are also kept in a small tail cache so
 *   that consumers that keep up never touch the disk; the rest are read a chunk at a time.
 * - A segment is sealed when the next batch would grow it past `segmentBytes`; compaction deletes
 *   sealed segments whose every record is below a given cursor.
 */
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ErrorCodes, MeshletError } from '@meshlet/core'
import { GroupCommit } from './group-commit.js'
import { MAGIC_BYTES, RECORD_HEADER_BYTES, writeRecord } from './record-format.js'
import { firstSeqOfFileName, READ_CHUNK_BYTES, SegmentFile, segmentFileName, type SegmentRecord } from './segment-file.js'
import { syncDirectory } from './sync-directory.js'

export interface SegmentLogOptions {
  /** What the log is called in messages: `namespace/name`. */
  readonly label: string
  readonly segmentBytes: number
  readonly fsync: boolean
  readonly tailCacheBytes: number
  readonly warn: (message: string) => void
}

/** Where a reader is: the next seq it wants, and (once known) where that record sits on disk. */
export interface ReadPosition {
  seq: number
  segment?: SegmentFile | undefined
  offset?: number | undefined
}

export interface LogStats {
  readonly events: number
  readonly bytes: number
  readonly nextSeq: number
  readonly firstSeq: number
}

export class SegmentLog {
  readonly dir: string
  readonly #options: SegmentLogOptions
  /** Oldest first; the last one is the one written to. */
  readonly #segments: SegmentFile[]
  readonly #commits: GroupCommit<readonly Uint8Array[]>
  readonly #listeners = new Set<() => void>()
  /** The newest durable records, oldest first from #tailStart. */
  #tail: SegmentRecord[] = []
  #tailStart = 0
  #tailBytes = 0
  #failure: MeshletError | undefined
  #closed = false
  #compacting: Promise<void> = Promise.resolve()

  private constructor(dir: string, options: SegmentLogOptions, segments: SegmentFile[]) {
    this.dir = dir
    this.#options = options
    this.#segments = segments
    this.#commits = new GroupCommit({
      commit: (batch) => this.#commit(batch),
      maxBytes: Math.min(4 * 1024 * 1024, options.segmentBytes),
      sizeOf: (events) => events.reduce((n, e) => n + RECORD_HEADER_BYTES + e.length, 0),
    })
  }

  /** Opens (creating if needed) the log in `dir`, recovering its last segment. */
  static async open(dir: string, options: SegmentLogOptions): Promise<SegmentLog> {
    await mkdir(dir, { recursive: true })
    const firstSeqs = (await readdir(dir)).map(firstSeqOfFileName).filter((s): s is number => s !== undefined).sort((a, b) => a - b)
    const segments: SegmentFile[] = []
    try {
      for (let i = 0; i < firstSeqs.length - 1; i++) {
        segments.push(await SegmentFile.sealed(join(dir, segmentFileName(firstSeqs[i]!)), firstSeqs[i]!, firstSeqs[i + 1]!))
      }
      const last = firstSeqs[firstSeqs.length - 1]
      if (last === undefined) {
        segments.push(await SegmentFile.create(dir, 1, options.fsync))
      } else {
        const { segment, dropped } = await SegmentFile.recover(join(dir, segmentFileName(last)), last, options.fsync)
        segments.push(segment)
        if (dropped !== undefined) {
          options.warn(`broker ${options.label}: dropped ${dropped.droppedBytes} bytes at byte ${dropped.droppedAt} of ${segment.path} (${dropped.reason}): a write cut short by a crash, never acknowledged to a publisher`)
        }
      }
    } catch (err) {
      await Promise.all(segments.map((s) => s.close()))
      throw err
    }
    return new SegmentLog(dir, options, segments)
  }

  /** The seq the next append gets; every seq below it is durable. */
  get nextSeq(): number {
    return this.#active.nextSeq
  }

  get segmentCount(): number {
    return this.#segments.length
  }

  /** The oldest seq still stored. */
  get firstSeq(): number {
    return this.#segments[0]!.firstSeq
  }

  /** Stores `events` with consecutive seqs; resolves once they are durable. */
  append(events: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) return Promise.reject(unavailable(`broker ${this.#options.label} is closed`))
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    if (events.length === 0) return Promise.resolve()
    return this.#commits.submit(events)
  }

  /** Calls `listener` after each commit makes records durable; returns its remover. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /**
   * Durable records from `position.seq` on, about `maxBytes` of them (at least one when any is
   * there), and moves `position` past them. Empty when the reader is at the end.
   */
  async read(position: ReadPosition, maxBytes: number = READ_CHUNK_BYTES): Promise<SegmentRecord[]> {
    const seq = position.seq
    if (seq >= this.nextSeq) return []
    const cached = this.#fromTail(seq, maxBytes)
    if (cached !== undefined) {
      position.seq += cached.length
      position.segment = undefined
      return cached
    }
    if (seq < this.firstSeq) throw new MeshletError(ErrorCodes.INTERNAL, `broker ${this.#options.label}: seq ${seq} was compacted away (the log starts at ${this.firstSeq}); a consumer read below its own cursor`)
    let segment = position.segment
    if (segment === undefined || seq < segment.firstSeq || seq >= segment.nextSeq || position.offset === undefined) {
      segment = this.#segmentOf(seq)
      position.segment = segment
      position.offset = await segment.offsetOf(seq)
    }
    const { records, next } = await segment.read(position.offset!, seq, maxBytes)
    position.seq += records.length
    position.offset = next
    return records
  }

  stats(): LogStats {
    let bytes = 0
    for (const s of this.#segments) bytes += s.size
    return { events: this.nextSeq - this.firstSeq, bytes, nextSeq: this.nextSeq, firstSeq: this.firstSeq }
  }

  /**
   * Deletes the sealed segments whose records are all below `cursor` and that got their last
   * record at least `retentionMs` ago. Returns when the oldest segment kept only for retention may
   * go (ms epoch), if one is.
   */
  compact(cursor: number, retentionMs: number | undefined): Promise<number | undefined> {
    const run = this.#compacting.then(async () => {
      const now = Date.now()
      let removed = 0
      let retryAt: number | undefined
      while (removed < this.#segments.length - 1) {
        const segment = this.#segments[removed]!
        if (segment.nextSeq > cursor) break
        if (retentionMs !== undefined && now - segment.lastWriteAt < retentionMs) {
          retryAt = segment.lastWriteAt + retentionMs
          break
        }
        removed++
      }
      if (removed === 0) return retryAt
      // Out of the list first: readers below the cursor do not exist, and stats stop counting them.
      for (const segment of this.#segments.splice(0, removed)) await segment.remove()
      if (this.#options.fsync) await syncDirectory(this.dir)
      return retryAt
    })
    this.#compacting = run.then(() => undefined, () => undefined)
    return run
  }

  /** Commits what is pending, then closes the files; appends after it reject. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#commits.flushed()
    await this.#compacting
    this.#listeners.clear()
    await Promise.all(this.#segments.map((s) => s.close()))
  }

  get #active(): SegmentFile {
    return this.#segments[this.#segments.length - 1]!
  }

  async #commit(batch: readonly (readonly Uint8Array[])[]): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure
    let bytes = 0
    let count = 0
    for (const events of batch) {
      count += events.length
      for (const e of events) bytes += RECORD_HEADER_BYTES + e.length
    }
    try {
      if (this.#active.size > MAGIC_BYTES && this.#active.size + bytes > this.#options.segmentBytes) await this.#rotate()
    } catch (err) {
      throw unavailable(`broker ${this.#options.label} could not start a new segment in ${this.dir}: ${(err as Error).message}`, err)
    }
    const active = this.#active
    const buf = Buffer.allocUnsafe(bytes)
    const ends = new Array<number>(count)
    let at = 0
    let seq = active.nextSeq
    for (const events of batch) {
      for (const e of events) {
        at = writeRecord(buf, at, seq, e)
        ends[seq - active.nextSeq] = at
        seq++
      }
    }
    const firstSeq = active.nextSeq
    try {
      await active.append(buf, ends, this.#options.fsync)
    } catch (err) {
      const failed = unavailable(`broker ${this.#options.label} could not write ${active.path}: ${(err as Error).message}`, err)
      if (active.broken) this.#failure = unavailable(`broker ${this.#options.label} is out of service: a failed write to ${active.path} could not be undone (${(err as Error).message}); restart the broker`, err)
      throw failed
    }
    this.#toTail(buf, ends, firstSeq)
    for (const listener of this.#listeners) listener()
  }

  async #rotate(): Promise<void> {
    const next = await SegmentFile.create(this.dir, this.#active.nextSeq, this.#options.fsync)
    this.#active.seal()
    this.#segments.push(next)
  }

  #segmentOf(seq: number): SegmentFile {
    let lo = 0
    let hi = this.#segments.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.#segments[mid]!.firstSeq <= seq) lo = mid
      else hi = mid - 1
    }
    return this.#segments[lo]!
  }

  /** Copies (not views: a view would keep the whole batch buffer alive) of the records just committed. */
  #toTail(buf: Buffer, ends: readonly number[], firstSeq: number): void {
    let start = 0
    for (let i = 0; i < ends.length; i++) {
      const data = Uint8Array.prototype.slice.call(buf, start + RECORD_HEADER_BYTES, ends[i]!)
      this.#tail.push({ seq: firstSeq + i, data })
      this.#tailBytes += ends[i]! - start
      start = ends[i]!
    }
    while (this.#tailBytes > this.#options.tailCacheBytes && this.#tailStart < this.#tail.length) {
      const old = this.#tail[this.#tailStart++]!
      this.#tailBytes -= old.data.length + RECORD_HEADER_BYTES
    }
    if (this.#tailStart > 1024 && this.#tailStart * 2 > this.#tail.length) {
      this.#tail = this.#tail.slice(this.#tailStart)
      this.#tailStart = 0
    }
  }

  #fromTail(seq: number, maxBytes: number): SegmentRecord[] | undefined {
    const first = this.#tail[this.#tailStart]
    if (first === undefined || seq < first.seq) return undefined
    const out: SegmentRecord[] = []
    let bytes = 0
    for (let i = this.#tailStart + (seq - first.seq); i < this.#tail.length && (out.length === 0 || bytes < maxBytes); i++) {
      const record = this.#tail[i]!
      out.push(record)
      bytes += record.data.length + RECORD_HEADER_BYTES
    }
    return out
  }
}

function unavailable(message: string, cause?: unknown): MeshletError {
  return new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, message, cause === undefined ? {} : { cause })
}
