/**
 * A trigger's durable position: one small file per (broker, trigger), `<trigger>.cursor`, replaced
 * atomically (write a temporary file, fsync it, rename it over, fsync the directory), so a crash
 * leaves the old or the new state, never a mix. The file is the cursor-file magic and one record
 * (record-format.ts) with the state as JSON.
 */
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeRecord, encodeRecord, CURSOR_MAGIC, MAGIC_BYTES } from './record-format.js'
import { storeCorrupt } from './segment-file.js'
import type { SeqRange } from './acked-set.js'
import { syncDirectory } from './sync-directory.js'

const SUFFIX = '.cursor'

export interface CursorState {
  /** The lowest seq not acked. */
  readonly cursor: number
  /** Seqs above the cursor acked out of order. */
  readonly acked: readonly SeqRange[]
  /** Every seq ever handed out is below this: a seq in [cursor, it) after a restart is a redelivery. */
  readonly handedOutBelow: number
}

export function cursorPath(dir: string, trigger: string): string {
  return join(dir, `${trigger}${SUFFIX}`)
}

/** The triggers with a cursor file in `dir`. */
export async function listCursors(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)))
  return names.filter((n) => n.endsWith(SUFFIX)).map((n) => n.slice(0, -SUFFIX.length))
}

/** The stored state, or undefined if there is none; a damaged file is MESHLET_ERR_STORE_CORRUPT. */
export async function readCursor(path: string): Promise<CursorState | undefined> {
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (buf.length < MAGIC_BYTES || !buf.subarray(0, MAGIC_BYTES).equals(CURSOR_MAGIC)) throw storeCorrupt(path, 0, 'not a meshlet cursor file')
  const record = decodeRecord(buf, MAGIC_BYTES)
  if (!record.ok) throw storeCorrupt(path, MAGIC_BYTES, record.reason)
  const state = JSON.parse(record.payload.toString('utf8')) as CursorState
  if (!Number.isSafeInteger(state.cursor) || !Array.isArray(state.acked) || !Number.isSafeInteger(state.handedOutBelow)) throw storeCorrupt(path, MAGIC_BYTES, 'the cursor record lacks cursor, acked or handedOutBelow')
  return state
}

export async function writeCursor(path: string, state: CursorState, fsync: boolean): Promise<void> {
  const tmp = `${path}.tmp`
  const handle = await open(tmp, 'w')
  try {
    await handle.writeFile(Buffer.concat([CURSOR_MAGIC, encodeRecord(0, Buffer.from(JSON.stringify(state), 'utf8'))]))
    if (fsync) await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, path)
  if (fsync) await syncDirectory(join(path, '..'))
}

export async function removeCursor(path: string, fsync: boolean): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)))
  await unlink(`${path}.tmp`).catch(() => {})
  if (fsync) await syncDirectory(join(path, '..'))
}
