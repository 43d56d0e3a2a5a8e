/**
 * One outbox record: the broker's name, a newline, and the event in the structured format (its
 * CloudEvents JSON, UTF-8), so the sender can batch records without encoding them again.
 */
const NEWLINE = 0x0a

export function spoolRecord(broker: string, json: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from(`${broker}\n`), json])
}

export function spooledEvent(record: Uint8Array): { broker: string; json: Uint8Array } {
  const at = record.indexOf(NEWLINE)
  return { broker: Buffer.from(record.buffer, record.byteOffset, at).toString('utf8'), json: record.subarray(at + 1) }
}
