/**
 * Media types as RFC 9110 section 8.3.1 writes them: `type/subtype *( OWS ";" OWS [ name=value ] )`,
 * where a value is a token or a quoted-string. Type, subtype and parameter names compare
 * case-insensitively (they are lowercased here); parameter values keep their case.
 */

export interface MediaType {
  readonly type: string
  readonly subtype: string
  /** `type/subtype`, lowercased, without parameters. */
  readonly essence: string
  /** Lowercased names → values (quoted-strings unescaped); the first of a repeated name wins. */
  readonly parameters: ReadonlyMap<string, string>
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/

function isOws(c: string | undefined): boolean {
  return c === ' ' || c === '\t'
}

/** The media type of a header or attribute value, or undefined when it is not one. */
export function parseMediaType(text: string): MediaType | undefined {
  const slash = text.indexOf('/')
  if (slash < 0) return undefined
  let end = text.indexOf(';')
  if (end < 0) end = text.length
  if (slash > end) return undefined
  const type = text.slice(0, slash).replace(/^[ \t]+/, '')
  const subtype = text.slice(slash + 1, end).replace(/[ \t]+$/, '')
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) return undefined
  const parameters = new Map<string, string>()
  let i = end
  while (i < text.length) {
    i++ // the ';'
    while (isOws(text[i])) i++
    if (i >= text.length) break
    if (text[i] === ';') continue
    const nameStart = i
    while (i < text.length && TOKEN_CHAR.test(text[i] as string)) i++
    const name = text.slice(nameStart, i).toLowerCase()
    if (name === '' || text[i] !== '=') return undefined
    i++
    let value: string
    if (text[i] === '"') {
      const quoted = readQuotedString(text, i)
      if (quoted === undefined) return undefined
      value = quoted.value
      i = quoted.end
    } else {
      const valueStart = i
      while (i < text.length && TOKEN_CHAR.test(text[i] as string)) i++
      value = text.slice(valueStart, i)
      if (value === '') return undefined
    }
    while (isOws(text[i])) i++
    if (i < text.length && text[i] !== ';') return undefined
    if (!parameters.has(name)) parameters.set(name, value)
  }
  return { type: type.toLowerCase(), subtype: subtype.toLowerCase(), essence: `${type}/${subtype}`.toLowerCase(), parameters }
}

/**
 * The RFC 9110 quoted-string starting at `start` (a '"'): its unescaped value and the index after
 * the closing quote; undefined when it is not closed or holds a control character.
 */
export function readQuotedString(text: string, start: number): { value: string; end: number } | undefined {
  let value = ''
  let i = start + 1
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 0x22) return { value, end: i + 1 }
    if (c === 0x5c) {
      const next = text.charCodeAt(i + 1)
      if (Number.isNaN(next) || !isQuotedPairChar(next)) return undefined
      value += text[i + 1]
      i += 2
      continue
    }
    if (!isQdtext(c)) return undefined
    value += text[i]
    i++
  }
  return undefined
}

// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text; quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
function isQdtext(c: number): boolean {
  return c === 0x09 || c === 0x20 || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || (c >= 0x80 && c <= 0xff)
}

function isQuotedPairChar(c: number): boolean {
  return c === 0x09 || (c >= 0x20 && c <= 0x7e) || (c >= 0x80 && c <= 0xff)
}

/** JSON data: `application/json`, `text/json` and any `+json` structured-syntax suffix (RFC 6839). */
export function isJsonMediaType(mediaType: MediaType): boolean {
  return mediaType.subtype === 'json' || mediaType.subtype.endsWith('+json')
}

/** Data the binary mode holds as a string (when its charset is UTF-8): `text/*`, or any type with a UTF-8 or US-ASCII charset. */
export function isTextMediaType(mediaType: MediaType): boolean {
  if (mediaType.type === 'text') return true
  const charset = mediaType.parameters.get('charset')?.toLowerCase()
  return charset === 'utf-8' || charset === 'us-ascii'
}

/** A charset the codec decodes as UTF-8: absent, utf-8 or its us-ascii subset. */
export function hasUtf8Charset(mediaType: MediaType): boolean {
  const charset = mediaType.parameters.get('charset')?.toLowerCase()
  return charset === undefined || charset === 'utf-8' || charset === 'utf8' || charset === 'us-ascii'
}
