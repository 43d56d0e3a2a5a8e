import { createHash } from 'node:crypto'
import { ErrorCodes, MeshletError } from '@meshlet/core'

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The `Nats-Msg-Id` of a stored event: JetStream drops a message whose id it has seen within the
 * stream's duplicate window, so a publisher that sends an event again (after a lost ack) stores it
 * once. CloudEvents identify an event by (source, id); the header is a SHA-256 of both, length-
 * prefixed so no two pairs share an id, in base64url: a fixed 43 characters whatever the event
 * carries (no CR/LF can reach a header, and the server's per-stream id table stays small).
 *
 * `data` is the event in CloudEvents JSON format, as the contract stores it; anything else is a
 * caller's bug and is refused with MESHLET_ERR_EVENT_INVALID before any event of the batch is sent.
 */
export function eventMsgId(data: Uint8Array, index: number): string {
  let event: unknown
  try {
    event = JSON.parse(decoder.decode(data))
  } catch (err) {
    throw invalid(index, 'is not UTF-8 JSON (the broker stores events in CloudEvents JSON format)', err)
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw invalid(index, 'is not a JSON object')
  const { source, id } = event as { source?: unknown; id?: unknown }
  if (typeof source !== 'string' || source.length === 0) throw invalid(index, 'has no string "source" attribute')
  if (typeof id !== 'string' || id.length === 0) throw invalid(index, 'has no string "id" attribute')
  return createHash('sha256').update(`${source.length}:${source}`).update(id).digest('base64url')
}

function invalid(index: number, what: string, cause?: unknown): MeshletError {
  return new MeshletError(ErrorCodes.EVENT_INVALID, `Event ${index} of the batch ${what}; nothing of the batch was stored.`, {
    details: { index },
    cause,
  })
}
