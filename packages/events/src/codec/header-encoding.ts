/**
 * ce- header values, HTTP binding section 3.1.3.2. Encoding percent-encodes space, '"', '%' and
 * every character outside U+0021–U+007E as the UTF-8 bytes of the code point (upper-case hex).
 * Decoding undoes an RFC 9110 quoted-string first (older senders quoted values), then one round of
 * percent-decoding, and refuses sequences that are not valid UTF-8 (overlong forms, surrogates,
 * truncated sequences). Raw characters outside printable ASCII (and HTAB) are refused: HTTP field
 * values are ASCII and the binding says how to carry the rest.
 */
import { eventInvalid } from './codec-errors.js'
import { readQuotedString } from './media-type.js'

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const HEX = '0123456789ABCDEF'

function needsEncoding(c: number): boolean {
  return c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x25
}

export function encodeHeaderValue(value: string): string {
  let i = 0
  while (i < value.length && !needsEncoding(value.charCodeAt(i))) i++
  if (i === value.length) return value
  let out = value.slice(0, i)
  for (const char of value.slice(i)) {
    const c = char.charCodeAt(0)
    if (char.length === 1 && !needsEncoding(c)) {
      out += char
      continue
    }
    for (const byte of utf8.encode(char)) out += `%${HEX[byte >> 4]}${HEX[byte & 0xf]}`
  }
  return out
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const lower = c | 0x20
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10
  return -1
}

/** The attribute value a ce- header carries; `header` names it in the refusal. */
export function decodeHeaderValue(header: string, raw: string): string {
  let value = raw.replace(/^[ \t]+|[ \t]+$/g, '')
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09) || c > 0x7e) {
      throw eventInvalid(header, 'header-encoding', `${header} holds a raw character U+${c.toString(16).toUpperCase().padStart(4, '0')} at position ${i}; percent-encode it as UTF-8 (HTTP binding 3.1.3.2)`)
    }
  }
  if (value.startsWith('"')) {
    const quoted = readQuotedString(value, 0)
    if (quoted === undefined || quoted.end !== value.length) {
      throw eventInvalid(header, 'quoted-string', `${header} starts a quoted-string that is not closed at the end of the value; send the value percent-encoded without quotes`)
    }
    value = quoted.value
  }
  const firstPercent = value.indexOf('%')
  if (firstPercent < 0) return value
  const bytes = new Uint8Array(value.length)
  let n = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c !== 0x25) {
      bytes[n++] = c
      continue
    }
    const high = hexValue(value.charCodeAt(i + 1))
    const low = hexValue(value.charCodeAt(i + 2))
    if (high < 0 || low < 0) {
      throw eventInvalid(header, 'percent-encoding', `${header} has a '%' at position ${i} not followed by two hex digits; send '%' itself as %25`)
    }
    bytes[n++] = (high << 4) | low
    i += 2
  }
  try {
    return strictUtf8.decode(bytes.subarray(0, n))
  } catch {
    throw eventInvalid(header, 'utf-8', `${header} percent-decodes to bytes that are not valid UTF-8 (overlong, surrogate or truncated sequence); percent-encode the UTF-8 bytes of each character`)
  }
}
