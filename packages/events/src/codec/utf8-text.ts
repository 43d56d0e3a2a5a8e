/**
 * Strict UTF-8 for bodies: bytes that are not UTF-8 are refused, never replaced with U+FFFD; a
 * string body (already decoded by the caller) is refused when it holds a lone surrogate, which
 * has no UTF-8 form. A byte order mark is kept, so a JSON body that starts with one is refused.
 */
import { eventInvalid } from './codec-errors.js'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const LONE_SURROGATE = /\p{Surrogate}/u

export function decodeUtf8(bytes: Uint8Array, attribute: string, index?: number): string {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    throw eventInvalid(attribute, 'utf-8', `the ${attribute === 'data' ? 'data' : 'body'} is not valid UTF-8; send UTF-8 text, or binary data with a non-text Content-Type`, index)
  }
}

export function checkWellFormed(text: string, attribute: string): string {
  if (LONE_SURROGATE.test(text)) throw eventInvalid(attribute, 'utf-8', `the ${attribute === 'data' ? 'data' : 'body'} holds a lone UTF-16 surrogate, which has no UTF-8 form`)
  return text
}

export function utf8ByteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

/** The UTF-8 size of `text` when it may exceed `limit`, else 0: skips counting when the length alone decides (a code unit is 1 to 3 bytes). */
export function utf8SizeOver(text: string, limit: number): number {
  if (text.length * 3 <= limit) return 0
  const size = utf8ByteLength(text)
  return size > limit ? size : 0
}
