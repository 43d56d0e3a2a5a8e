/**
 * One segment of a broker's log: a file named after the seq of its first record
 * (`00000000000000000042.seg`), holding records with consecutive seqs. Only the last segment of a
 * log is written to; the others are sealed and only read, then deleted whole by compaction.
 *
 * A segment keeps a sparse in-memory index (one seq → offset entry per INDEX_INTERVAL bytes), built
 * while appending or on the first seek into a sealed segment, so a reader seeks by seq by reading
 * at most INDEX_INTERVAL bytes of one file, never the whole log.
 */
import { open, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ErrorCodes, MeshletError } from '@meshlet/core'
import { decodeRecord, MAGIC_BYTES, MAX_RECORD_PAYLOAD, RECORD_HEADER_BYTES, SEGMENT_MAGIC, validRecordAfter } from './record-format.js'
import { syncDirectory } from './sync-directory.js'

export const SEGMENT_SUFFIX = '.seg'
const INDEX_INTERVAL = 64 * 1024
/** Readers read this much at a time (more only for one record larger than this). */
export const READ_CHUNK_BYTES = 256 * 1024

export interface SegmentRecord {
  readonly seq: number
  /** A copy: holding it does not keep the read buffer alive. */
  readonly data: Uint8Array
}

export interface SegmentRead {
  readonly records: SegmentRecord[]
  /** The offset after the last record returned. */
  readonly next: number
}

export interface RecoveryReport {
  /** Bytes cut from the end: a write torn by a crash, never acknowledged. */
  readonly droppedBytes: number
  readonly droppedAt: number
  readonly reason: string
}

export function segmentFileName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}${SEGMENT_SUFFIX}`
}

/** The first seq a segment file name stands for, or undefined for a name that is not a segment's. */
export function firstSeqOfFileName(name: string): number | undefined {
  if (!/^\d{20}\.seg$/.test(name)) return undefined
  const seq = Number(name.slice(0, 20))
  return Number.isSafeInteger(seq) && seq >= 1 ? seq : undefined
}

export function storeCorrupt(path: string, offset: number, reason: string): MeshletError {
  return new MeshletError(ErrorCodes.STORE_CORRUPT, `broker log ${path} is damaged at byte ${offset}: ${reason}; restore the file from a backup, or move it away to drop the events it holds`, { details: { file: path, offset, reason } })
}

export class SegmentFile {
  readonly path: string
  readonly firstSeq: number
  /** Durable bytes (magic + committed records): reads never go past them. */
  size: number
  /** The seq after this segment's last record. */
  nextSeq: number
  /** When the segment got its last record (ms epoch): retention counts from it. */
  lastWriteAt: number
  /** A failed append could not be cut back: what the file holds past `size` is unknown. */
  broken = false
  #handle: FileHandle | undefined
  #writable: boolean
  readonly #indexSeqs: number[] = []
  readonly #indexOffsets: number[] = []
  /** Every record before this offset was seen and verified; the record at it has seq #indexedSeq. */
  #indexedTo: number
  #indexedSeq: number

  private constructor(path: string, firstSeq: number, size: number, nextSeq: number, lastWriteAt: number, handle: FileHandle | undefined, writable: boolean) {
    this.path = path
    this.firstSeq = firstSeq
    this.size = size
    this.nextSeq = nextSeq
    this.lastWriteAt = lastWriteAt
    this.#handle = handle
    this.#writable = writable
    this.#indexedTo = MAGIC_BYTES
    this.#indexedSeq = firstSeq
    this.#indexSeqs.push(firstSeq)
    this.#indexOffsets.push(MAGIC_BYTES)
  }

  get recordCount(): number {
    return this.nextSeq - this.firstSeq
  }

  /** Creates an empty segment durably (file and directory entry fsynced) before any record goes in. */
  static async create(dir: string, firstSeq: number, fsync: boolean): Promise<SegmentFile> {
    const path = join(dir, segmentFileName(firstSeq))
    const handle = await open(path, 'wx+')
    try {
      await writeFully(handle, SEGMENT_MAGIC, 0)
      if (fsync) {
        await handle.sync()
        await syncDirectory(dir)
      }
    } catch (err) {
      await handle.close().catch(() => {})
      throw err
    }
    return new SegmentFile(path, firstSeq, MAGIC_BYTES, firstSeq, Date.now(), handle, true)
  }

  /** A sealed segment: its end is where the next segment starts. Nothing is read until needed. */
  static async sealed(path: string, firstSeq: number, nextSeq: number): Promise<SegmentFile> {
    const info = await stat(path)
    if (info.size < MAGIC_BYTES + (nextSeq - firstSeq) * RECORD_HEADER_BYTES) {
      throw storeCorrupt(path, info.size, `the file is ${info.size} bytes, too short for the ${nextSeq - firstSeq} records before the next segment`)
    }
    return new SegmentFile(path, firstSeq, info.size, nextSeq, info.mtimeMs, undefined, false)
  }

  /**
   * Opens the last segment for appending: verifies every record, and cuts off a torn tail (records
   * after it are damage, not a tail: that is MESHLET_ERR_STORE_CORRUPT). Reads it a chunk at a time.
   */
  static async recover(path: string, firstSeq: number, fsync: boolean): Promise<{ segment: SegmentFile; dropped: RecoveryReport | undefined }> {
    const handle = await open(path, 'r+')
    try {
      const fileSize = (await handle.stat()).size
      const magic = Buffer.alloc(MAGIC_BYTES)
      await handle.read(magic, 0, MAGIC_BYTES, 0)
      if (fileSize < MAGIC_BYTES || !magic.equals(SEGMENT_MAGIC)) {
        // create() fsyncs the magic before any record is written, so a short or wrong magic with
        // records after it is not a crash's doing.
        if (fileSize > MAGIC_BYTES) throw storeCorrupt(path, 0, 'the file does not start with the segment magic (not a meshlet broker segment?)')
        await writeFully(handle, SEGMENT_MAGIC, 0)
        await handle.truncate(MAGIC_BYTES)
        if (fsync) await handle.sync()
        const segment = new SegmentFile(path, firstSeq, MAGIC_BYTES, firstSeq, Date.now(), handle, true)
        return { segment, dropped: fileSize > 0 ? { droppedBytes: fileSize, droppedAt: 0, reason: 'a segment header cut short' } : undefined }
      }
      const segment = new SegmentFile(path, firstSeq, fileSize, firstSeq, (await handle.stat()).mtimeMs, handle, true)
      const end = await segment.#scanTo(fileSize, undefined)
      segment.nextSeq = segment.#indexedSeq
      if (end.damage === undefined) return { segment, dropped: undefined }
      const rest = Buffer.alloc(fileSize - end.offset)
      await handle.read(rest, 0, rest.length, end.offset)
      if (validRecordAfter(rest, 0)) throw storeCorrupt(path, end.offset, `${end.damage}, and valid records follow`)
      await handle.truncate(end.offset)
      if (fsync) await handle.sync()
      segment.size = end.offset
      return { segment, dropped: { droppedBytes: fileSize - end.offset, droppedAt: end.offset, reason: end.damage } }
    } catch (err) {
      await handle.close().catch(() => {})
      throw err
    }
  }

  /**
   * Appends encoded records for seqs nextSeq … nextSeq+count-1 at the end (`recordEnds[i]` is the
   * end of record i within `buf`), and fsyncs before it resolves. On failure the segment is cut back
   * to where it was, so a failed batch leaves nothing behind.
   */
  async append(buf: Buffer, recordEnds: readonly number[], fsync: boolean): Promise<void> {
    const handle = this.#writableHandle()
    const at = this.size
    try {
      await writeFully(handle, buf, at)
      if (fsync) await handle.datasync()
    } catch (err) {
      // Cutting back must itself be durable, or a later fsync could persist the failed bytes.
      try {
        await handle.truncate(at)
        if (fsync) await handle.sync()
      } catch {
        this.broken = true
      }
      throw err
    }
    // A writable segment is always indexed to its end (created empty, or scanned by recover).
    let lastIndexed = this.#indexOffsets[this.#indexOffsets.length - 1]!
    let recordStart = at
    for (let i = 0; i < recordEnds.length; i++) {
      if (recordStart - lastIndexed >= INDEX_INTERVAL) {
        this.#indexSeqs.push(this.nextSeq + i)
        this.#indexOffsets.push(recordStart)
        lastIndexed = recordStart
      }
      recordStart = at + recordEnds[i]!
    }
    this.size = at + buf.length
    this.nextSeq += recordEnds.length
    this.#indexedTo = this.size
    this.#indexedSeq = this.nextSeq
    this.lastWriteAt = Date.now()
  }

  /** The offset of the record with `seq` (or the end offset for seq == nextSeq). */
  async offsetOf(seq: number): Promise<number> {
    if (seq < this.firstSeq || seq > this.nextSeq) throw new RangeError(`seq ${seq} is not in segment ${this.path} (${this.firstSeq} … ${this.nextSeq - 1})`)
    if (seq === this.nextSeq) return this.size
    if (seq >= this.#indexedSeq) {
      const scanned = await this.#scanTo(this.size, seq)
      if (scanned.damage !== undefined) throw storeCorrupt(this.path, scanned.offset, scanned.damage)
    }
    const i = upperBound(this.#indexSeqs, seq) - 1
    let offset = this.#indexOffsets[i]!
    let at = this.#indexSeqs[i]!
    while (at < seq) {
      const read = await this.read(offset, at, INDEX_INTERVAL * 2)
      if (read.records.length === 0) throw storeCorrupt(this.path, offset, `seq ${seq} is missing`)
      for (const r of read.records) {
        if (r.seq === seq) return offset
        offset += RECORD_HEADER_BYTES + r.data.length
        at = r.seq + 1
      }
    }
    return offset
  }

  /**
   * Records from `offset` (whose first record must have seq `seq`), about `maxBytes` of them (at
   * least one if any is left). Damage is MESHLET_ERR_STORE_CORRUPT with the file and offset.
   */
  async read(offset: number, seq: number, maxBytes: number = READ_CHUNK_BYTES): Promise<SegmentRead> {
    const records: SegmentRecord[] = []
    if (offset >= this.size) return { records, next: offset }
    const handle = await this.#readHandle()
    let length = Math.min(maxBytes, this.size - offset)
    let buf = Buffer.allocUnsafe(length)
    await readFully(handle, buf, offset)
    let at = 0
    let expected = seq
    for (;;) {
      const rec = decodeRecord(buf, at)
      if (!rec.ok || rec.seq !== expected) {
        // The records before damage are good: return them; the next read starts at the damage and fails.
        if (records.length > 0) break
        if (rec.ok) throw storeCorrupt(this.path, offset + at, `the record has seq ${rec.seq} where ${expected} belongs`)
        if (!rec.short || offset + buf.length >= this.size) throw storeCorrupt(this.path, offset + at, rec.reason)
        // One record larger than the chunk: read exactly it.
        const need = RECORD_HEADER_BYTES + Math.min(buf.length >= 4 ? buf.readUInt32LE(0) : 0, MAX_RECORD_PAYLOAD)
        length = Math.min(need, this.size - offset)
        buf = Buffer.allocUnsafe(length)
        await readFully(handle, buf, offset)
        continue
      }
      records.push({ seq: rec.seq, data: Uint8Array.prototype.slice.call(rec.payload) })
      expected++
      at = rec.next
      if (at >= buf.length) break
    }
    return { records, next: offset + at }
  }

  /** No more appends. The handle stays open for readers that may be using it. */
  seal(): void {
    this.#writable = false
  }

  async close(): Promise<void> {
    const handle = this.#handle
    this.#handle = undefined
    await handle?.close()
  }

  async remove(): Promise<void> {
    await this.close()
    await unlink(this.path)
  }

  get name(): string {
    return basename(this.path)
  }

  /**
   * Reads forward from where the index ends, verifying and indexing records, until the record with
   * `untilSeq` is indexed, or to `end`; stops at the first damaged record and says where and why.
   */
  async #scanTo(end: number, untilSeq: number | undefined): Promise<{ offset: number; damage: string | undefined }> {
    const handle = await this.#readHandle()
    let lastIndexed = this.#indexOffsets[this.#indexOffsets.length - 1]!
    while (this.#indexedTo < end && (untilSeq === undefined || this.#indexedSeq <= untilSeq)) {
      const offset = this.#indexedTo
      let buf = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, end - offset))
      await readFully(handle, buf, offset)
      let at = 0
      for (;;) {
        let rec = decodeRecord(buf, at)
        if (!rec.ok && rec.short && at === 0 && buf.length >= 4 && offset + buf.length < end) {
          // One record larger than the chunk: read exactly it.
          buf = Buffer.allocUnsafe(Math.min(RECORD_HEADER_BYTES + Math.min(buf.readUInt32LE(0), MAX_RECORD_PAYLOAD), end - offset))
          await readFully(handle, buf, offset)
          rec = decodeRecord(buf, 0)
        }
        if (!rec.ok && rec.short && at > 0 && offset + buf.length < end) break
        const damage = !rec.ok ? rec.reason : rec.seq !== this.#indexedSeq ? `the record has seq ${rec.seq} where ${this.#indexedSeq} belongs` : undefined
        if (!rec.ok || damage !== undefined) {
          this.#indexedTo = offset + at
          return { offset: offset + at, damage }
        }
        if (offset + at - lastIndexed >= INDEX_INTERVAL) {
          this.#indexSeqs.push(rec.seq)
          this.#indexOffsets.push(offset + at)
          lastIndexed = offset + at
        }
        this.#indexedSeq++
        at = rec.next
        this.#indexedTo = offset + at
        if (at >= buf.length || (untilSeq !== undefined && this.#indexedSeq > untilSeq)) break
      }
    }
    return { offset: this.#indexedTo, damage: undefined }
  }

  async #readHandle(): Promise<FileHandle> {
    this.#handle ??= await open(this.path, 'r')
    return this.#handle
  }

  #writableHandle(): FileHandle {
    if (!this.#writable || this.#handle === undefined) throw new Error(`segment ${this.path} is sealed`)
    return this.#handle
  }
}

async function writeFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  // A write may be partial (a file size limit, a full disk); the next one then reports why.
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done)
    done += bytesWritten
  }
}

async function readFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done)
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`)
    done += bytesRead
  }
}

function upperBound(sorted: readonly number[], value: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid]! <= value) lo = mid + 1
    else hi = mid
  }
  return lo
}
