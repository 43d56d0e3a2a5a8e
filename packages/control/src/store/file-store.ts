/**
 * The embedded, crash-safe store: a write-ahead log of watch events plus a snapshot.
 *
 * - `append` writes a batch and fsyncs before it resolves: a write is acknowledged only once it is
 *   on disk, so it survives SIGKILL or power loss.
 * - `compact` writes the snapshot to a temporary file, fsyncs it, renames it over the old one,
 *   fsyncs the directory, then starts an empty log the same way. A crash at any point leaves either
 *   the old or the new snapshot, and log records already in the snapshot are skipped on replay.
 * - `open` replays snapshot + log. A record cut short at the very end of the log (a crash during
 *   a write, never acknowledged) is truncated with a warning. Any other damage refuses to start
 *   with MESHLET_ERR_STORE_CORRUPT naming the file and byte offset: state is never silently lost
 *   or invented.
 */
import { mkdir, open, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { ControlErrorCodes, type Instance, type Resource, type WatchEvent } from '@meshlet/core'
import { ControlError } from '../errors.js'
import type { Logger } from '../logger.js'
import { decodeRecord, encodeRecord, encodeRecordText, HEADER_BYTES, SNAPSHOT_MAGIC, validRecordAfter, WAL_MAGIC } from './record-codec.js'

export const WAL_FILE = 'meshlet.wal'
export const SNAPSHOT_FILE = 'meshlet.snapshot'
export const LOCK_FILE = 'meshlet.lock'

export interface StoreSnapshot {
  resourceVersion: number
  resources: Resource[]
  instances: Instance[]
}

export interface RecoveredState {
  snapshot: StoreSnapshot | undefined
  /** Log events after the snapshot, in resourceVersion order. */
  events: WatchEvent[]
  /** The payload size of each of `events` in bytes (its JSON). */
  sizes: number[]
}

export class FileStore {
  readonly dir: string
  #wal: FileHandle
  #walBytes: number
  #snapshotBytes: number

  private constructor(dir: string, wal: FileHandle, walBytes: number, snapshotBytes: number) {
    this.dir = dir
    this.#wal = wal
    this.#walBytes = walBytes
    this.#snapshotBytes = snapshotBytes
  }

  /** Opens (creating if needed) the store in `dir` and returns what it holds. */
  static async open(dir: string, log: Logger): Promise<{ store: FileStore; recovered: RecoveredState }> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await lockDir(dir)
    try {
      return await FileStore.#open(dir, log)
    } catch (err) {
      await unlink(join(dir, LOCK_FILE)).catch(() => {})
      throw err
    }
  }

  static async #open(dir: string, log: Logger): Promise<{ store: FileStore; recovered: RecoveredState }> {
    const { snapshot, bytes: snapshotBytes } = await readSnapshot(join(dir, SNAPSHOT_FILE))
    const walPath = join(dir, WAL_FILE)
    const { events, sizes, validBytes, fileBytes } = await readWal(walPath, snapshot?.resourceVersion ?? 0, log)
    let wal: FileHandle
    if (fileBytes < 0) {
      await writeFileDurably(dir, WAL_FILE, WAL_MAGIC)
      wal = await open(walPath, 'r+')
    } else {
      wal = await open(walPath, 'r+')
      if (validBytes < fileBytes) {
        await wal.truncate(validBytes)
        await wal.sync()
      }
    }
    return { store: new FileStore(dir, wal, Math.max(validBytes, WAL_MAGIC.length), snapshotBytes), recovered: { snapshot, events, sizes } }
  }

  /** Bytes in the log since the last compaction. */
  get walBytes(): number {
    return this.#walBytes
  }

  /** Bytes of the snapshot file (0 without one). Compacting once the log outgrows it keeps the work linear in the writes. */
  get snapshotBytes(): number {
    return this.#snapshotBytes
  }

  /**
   * Appends events, each given as its JSON (`JSON.stringify(event)`: the caller has it already),
   * and fsyncs; resolves only once they are durable. Callers must not overlap calls.
   */
  async append(events: readonly string[]): Promise<void> {
    const buf = Buffer.concat(events.map((e) => encodeRecordText(e)))
    await this.#wal.write(buf, 0, buf.length, this.#walBytes)
    this.#walBytes += buf.length
    await this.#wal.datasync()
  }

  /** Replaces snapshot and log with `snapshot`. Must not overlap `append`. */
  async compact(snapshot: StoreSnapshot): Promise<void> {
    const data = Buffer.concat([SNAPSHOT_MAGIC, encodeRecord(snapshot)])
    await writeFileDurably(this.dir, SNAPSHOT_FILE, data)
    this.#snapshotBytes = data.length
    await writeFileDurably(this.dir, WAL_FILE, WAL_MAGIC)
    const old = this.#wal
    this.#wal = await open(join(this.dir, WAL_FILE), 'r+')
    this.#walBytes = WAL_MAGIC.length
    await old.close()
  }

  async close(): Promise<void> {
    await this.#wal.close()
    await unlink(join(this.dir, LOCK_FILE)).catch(() => {})
  }
}

/**
 * Claims the directory for this process: two endpoints appending to one log would interleave
 * records. A lock left by a process that no longer runs (SIGKILL) is taken over.
 */
async function lockDir(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isRunning(pid)) {
      throw new ControlError(
        ControlErrorCodes.STORE_LOCKED,
        `the data directory ${dir} is in use by another meshlet control endpoint (pid ${pid}); stop it first, or give this one another --data. If no such process is a meshlet endpoint, delete ${path}.`,
      )
    }
    await unlink(path).catch(() => {})
  }
  throw new ControlError(ControlErrorCodes.STORE_LOCKED, `could not lock the data directory ${dir} (${path} keeps reappearing: is another endpoint starting there?)`)
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function corrupt(file: string, offset: number, reason: string, advice: string): ControlError {
  return new ControlError(
    ControlErrorCodes.STORE_CORRUPT,
    `the store file ${file} is corrupt at byte offset ${offset}: ${reason}. meshlet refuses to start rather than lose or invent state. ${advice}`,
  )
}

async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    return await fh.readFile()
  } finally {
    await fh.close()
  }
}

async function readSnapshot(path: string): Promise<{ snapshot: StoreSnapshot | undefined; bytes: number }> {
  const buf = await readFileIfExists(path)
  if (buf === undefined) return { snapshot: undefined, bytes: 0 }
  const advice = `Snapshots are replaced atomically, so this is damage to the disk or the file, not a crash. Restore the data directory from a backup.`
  if (!buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw corrupt(path, 0, 'it does not start with the meshlet snapshot header', advice)
  const r = decodeRecord(buf, SNAPSHOT_MAGIC.length)
  if (!r.ok) throw corrupt(path, SNAPSHOT_MAGIC.length, r.reason, advice)
  if (r.next !== buf.length) throw corrupt(path, r.next, `${buf.length - r.next} unexpected bytes after the snapshot`, advice)
  const s = r.value as StoreSnapshot
  if (!Number.isSafeInteger(s?.resourceVersion) || !Array.isArray(s.resources) || !Array.isArray(s.instances)) throw corrupt(path, SNAPSHOT_MAGIC.length, 'the snapshot does not have the expected shape', advice)
  return { snapshot: s, bytes: buf.length }
}

async function readWal(path: string, afterRv: number, log: Logger): Promise<{ events: WatchEvent[]; sizes: number[]; validBytes: number; fileBytes: number }> {
  const buf = await readFileIfExists(path)
  if (buf === undefined) return { events: [], sizes: [], validBytes: 0, fileBytes: -1 }
  const events: WatchEvent[] = []
  const sizes: number[] = []
  if (buf.length < WAL_MAGIC.length && WAL_MAGIC.subarray(0, buf.length).equals(buf)) {
    log.warn(`${path}: the log header was cut short (${buf.length} bytes), the trace of a crash while creating it; starting the log afresh`)
    return { events, sizes, validBytes: 0, fileBytes: -1 }
  }
  const advice = `Records follow that are intact, so this is damage, not a write cut short by a crash. Restore the data directory from a backup; or, accepting the loss of every change after the last snapshot, move ${path} aside and start again.`
  if (!buf.subarray(0, WAL_MAGIC.length).equals(WAL_MAGIC)) throw corrupt(path, 0, 'it does not start with the meshlet log header', advice)
  let offset = WAL_MAGIC.length
  let lastRv = afterRv
  let index = 0
  while (offset < buf.length) {
    const r = decodeRecord(buf, offset)
    if (!r.ok) {
      if (validRecordAfter(buf, offset)) throw corrupt(path, offset, `record ${index}: ${r.reason}`, advice)
      log.warn(`${path}: the last record (byte offset ${offset}, ${buf.length - offset} bytes) is incomplete (${r.reason}), the trace of a crash during a write that was never acknowledged; truncating it`)
      return { events, sizes, validBytes: offset, fileBytes: buf.length }
    }
    const e = r.value as WatchEvent
    if (!Number.isSafeInteger(e?.resourceVersion) || e.object === null || typeof e.object !== 'object') throw corrupt(path, offset, `record ${index} is not a store event`, advice)
    if (e.resourceVersion > afterRv) {
      if (e.resourceVersion <= lastRv) throw corrupt(path, offset, `record ${index} has resourceVersion ${e.resourceVersion}, not above the previous ${lastRv}`, advice)
      lastRv = e.resourceVersion
      events.push(e)
      sizes.push(r.next - offset - HEADER_BYTES)
    }
    offset = r.next
    index++
  }
  return { events, sizes, validBytes: offset, fileBytes: buf.length }
}

/** Write-temp + fsync + rename + fsync(dir): after it returns, `name` holds `data` or (after a crash before) its old content. */
async function writeFileDurably(dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `${name}.tmp`)
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, join(dir, name))
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

