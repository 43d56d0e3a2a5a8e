/**
 * The framing of the embedded broker's files. A segment file is an 8-byte magic followed by
 * records; a record is `u32le length | u32le crc32 | u64le seq | payload`, where the checksum covers
 * the length, the seq and the payload, so a damaged length or seq is caught like damaged data.
 * Cursor files hold one record of the same shape (seq 0, a JSON payload).
 */
import { crc32 } from 'node:zlib'

export const SEGMENT_MAGIC = Buffer.from('MSHEVS01')
export const CURSOR_MAGIC = Buffer.from('MSHCUR01')
export const MAGIC_BYTES = 8
export const RECORD_HEADER_BYTES = 16
/** No record is larger: a bigger length on read is damage, not data. */
export const MAX_RECORD_PAYLOAD = 64 * 1024 * 1024

/** Writes the record for `payload` at `offset` of `out` (which must have room) and returns the end offset. */
export function writeRecord(out: Buffer, offset: number, seq: number, payload: Uint8Array): number {
  out.writeUInt32LE(payload.length, offset)
  // Seqs are safe integers: two u32 halves avoid a BigInt per record.
  out.writeUInt32LE(seq % 0x1_0000_0000, offset + 8)
  out.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), offset + 12)
  out.set(payload, offset + RECORD_HEADER_BYTES)
  const end = offset + RECORD_HEADER_BYTES + payload.length
  out.writeUInt32LE(checksum(out, offset, end), offset + 4)
  return end
}

export function encodeRecord(seq: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length)
  writeRecord(out, 0, seq, payload)
  return out
}

export type DecodedRecord =
  | { ok: true; seq: number; payload: Buffer; next: number }
  /** `short`: the buffer ends inside the record (read more, or a torn tail); `damaged`: it can never be valid. */
  | { ok: false; short: boolean; reason: string }

/** Decodes the record at `offset` of `buf`; the payload is a view into `buf`. */
export function decodeRecord(buf: Buffer, offset: number): DecodedRecord {
  const left = buf.length - offset
  if (left < RECORD_HEADER_BYTES) return { ok: false, short: true, reason: `only ${left} bytes remain, less than a record header` }
  const length = buf.readUInt32LE(offset)
  if (length > MAX_RECORD_PAYLOAD) return { ok: false, short: false, reason: `the record claims ${length} bytes, over the ${MAX_RECORD_PAYLOAD}-byte limit` }
  const end = offset + RECORD_HEADER_BYTES + length
  if (end > buf.length) return { ok: false, short: true, reason: `the record claims ${length} bytes but only ${left - RECORD_HEADER_BYTES} remain` }
  if (checksum(buf, offset, end) !== buf.readUInt32LE(offset + 4)) return { ok: false, short: false, reason: 'checksum mismatch' }
  const seq = buf.readUInt32LE(offset + 8) + buf.readUInt32LE(offset + 12) * 0x1_0000_0000
  return { ok: true, seq, payload: buf.subarray(offset + RECORD_HEADER_BYTES, end), next: end }
}

/**
 * True if a whole valid record starts anywhere after `offset`. Tells damage in the middle of a
 * file (valid records follow) from a write cut short by a crash (nothing valid follows).
 */
export function validRecordAfter(buf: Buffer, offset: number): boolean {
  for (let at = offset + 1; at + RECORD_HEADER_BYTES <= buf.length; at++) {
    if (decodeRecord(buf, at).ok) return true
  }
  return false
}

function checksum(buf: Buffer, offset: number, end: number): number {
  return crc32(buf.subarray(offset + 8, end), crc32(buf.subarray(offset, offset + 4)))
}
