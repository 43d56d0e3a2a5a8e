/**
 * The framing of the store's files. A file is an 8-byte magic followed by records; a record is
 * `u32le length | u32le crc32(length bytes + payload) | payload (UTF-8 JSON)`. The checksum covers
 * the length, so a damaged length is caught like damaged data.
 */
import { crc32 } from 'node:zlib'

export const WAL_MAGIC = Buffer.from('MSHWAL01')
export const SNAPSHOT_MAGIC = Buffer.from('MSHSNP01')
export const HEADER_BYTES = 8
/** Larger records are refused on write and treated as damage on read. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024

export function encodeRecord(value: unknown): Buffer {
  return encodeRecordText(JSON.stringify(value))
}

/** A record whose payload is `json`, already serialized (the caller measured or reused it). */
export function encodeRecordText(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8')
  if (payload.length > MAX_RECORD_BYTES) throw new RangeError(`a store record of ${payload.length} bytes is over the ${MAX_RECORD_BYTES}-byte limit`)
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length)
  out.writeUInt32LE(payload.length, 0)
  out.writeUInt32LE(crc32(payload, crc32(out.subarray(0, 4))), 4)
  payload.copy(out, HEADER_BYTES)
  return out
}

export type DecodeResult =
  | { ok: true; value: unknown; next: number }
  | { ok: false; reason: string }

/** Decodes the record at `offset`; `reason` says what is wrong when it cannot. */
export function decodeRecord(buf: Buffer, offset: number): DecodeResult {
  if (buf.length - offset < HEADER_BYTES) return { ok: false, reason: `only ${buf.length - offset} bytes remain, less than a record header` }
  const length = buf.readUInt32LE(offset)
  const end = offset + HEADER_BYTES + length
  if (length > MAX_RECORD_BYTES || end > buf.length) return { ok: false, reason: `the record claims ${length} bytes but only ${buf.length - offset - HEADER_BYTES} remain` }
  const payload = buf.subarray(offset + HEADER_BYTES, end)
  if (crc32(payload, crc32(buf.subarray(offset, offset + 4))) !== buf.readUInt32LE(offset + 4)) return { ok: false, reason: 'checksum mismatch' }
  try {
    return { ok: true, value: JSON.parse(payload.toString('utf8')), next: end }
  } catch {
    return { ok: false, reason: 'the checksum matches but the payload is not JSON (written by another program?)' }
  }
}

/**
 * True if a whole valid record starts anywhere after `offset`. Tells damage in the middle of a
 * file (valid records follow) from a write cut short by a crash (nothing valid follows).
 */
export function validRecordAfter(buf: Buffer, offset: number): boolean {
  for (let at = offset + 1; at + HEADER_BYTES <= buf.length; at++) {
    const length = buf.readUInt32LE(at)
    if (length > MAX_RECORD_BYTES || at + HEADER_BYTES + length > buf.length) continue
    if (decodeRecord(buf, at).ok) return true
  }
  return false
}
