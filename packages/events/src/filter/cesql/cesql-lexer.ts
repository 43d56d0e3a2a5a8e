/**
 * CESQL tokens (spec §2). Names are one token kind (`name`): the parser tells keywords, value
 * identifiers and function names apart, because which one a word is depends on what follows it.
 * Integer tokens carry no sign; the parser folds a leading `-` or `+` into the literal.
 */
import { CesqlParseError } from './cesql-parse-error.js'

export type Token =
  | { readonly kind: 'name'; readonly text: string; readonly pos: number }
  | { readonly kind: 'integer'; readonly text: string; readonly pos: number }
  | { readonly kind: 'string'; readonly value: string; readonly pos: number }
  | { readonly kind: 'op'; readonly text: Operator; readonly pos: number }
  | { readonly kind: 'end'; readonly pos: number }

export type Operator = '(' | ')' | ',' | '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%'

const TWO_CHAR = new Set(['!=', '<>', '<=', '>='])
const ONE_CHAR = new Set(['(', ')', ',', '=', '<', '>', '+', '-', '*', '/', '%'])

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r'
const isWordChar = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_'

export function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (isSpace(c)) {
      i++
      continue
    }
    const start = i
    if (isWordChar(c)) {
      while (i < text.length && isWordChar(text[i]!)) i++
      const word = text.slice(start, i)
      tokens.push(/^[0-9]+$/.test(word) ? { kind: 'integer', text: word, pos: start } : { kind: 'name', text: word, pos: start })
      continue
    }
    if (c === "'" || c === '"') {
      const { value, end } = readString(text, start)
      tokens.push({ kind: 'string', value, pos: start })
      i = end
      continue
    }
    const two = text.slice(i, i + 2)
    if (TWO_CHAR.has(two)) {
      tokens.push({ kind: 'op', text: two as Operator, pos: start })
      i += 2
      continue
    }
    if (ONE_CHAR.has(c)) {
      tokens.push({ kind: 'op', text: c as Operator, pos: start })
      i++
      continue
    }
    const shown = String.fromCodePoint(text.codePointAt(i)!)
    throw new CesqlParseError(`unexpected character ${JSON.stringify(shown)}`, start)
  }
  tokens.push({ kind: 'end', pos: text.length })
  return tokens
}

/**
 * A string literal from its opening quote. Inside `'…'` the escape `\'` is a quote, inside `"…"`
 * `\"` is; every other backslash stays as written, so `LIKE 'a\_b'` keeps the `\_` its pattern
 * needs (the sdk-go and sdk-java readings). `end` is the offset past the closing quote.
 */
function readString(text: string, start: number): { value: string; end: number } {
  const quote = text[start]!
  let out = ''
  let i = start + 1
  while (i < text.length) {
    const c = text[i]!
    if (c === '\\' && i + 1 < text.length) {
      const next = text[i + 1]!
      out += next === quote ? quote : c + next
      i += 2
      continue
    }
    if (c === quote) {
      return { value: out, end: i + 1 }
    }
    out += c
    i++
  }
  throw new CesqlParseError(`string literal is not closed (a ${quote} is missing)`, start)
}
