/**
 * CESQL `LIKE` patterns (spec §3.4.3): `%` matches any run of characters, `_` exactly one, `\%` and
 * `\_` match themselves, and any other character (a lone `\` included) matches itself, case
 * sensitively. Characters are Unicode code points.
 *
 * The pattern comes from users, so no regular expression is built from it. The pattern splits at
 * each `%` into segments; the first must match at the start, the last at the end, and each middle
 * one at its leftmost place after the previous (leftmost is always safe for `%`-separated
 * segments, so nothing is retried). Middle segments are found with bit-parallel Shift-And, so a
 * match costs O(n · ⌈m / 32⌉) for text length n and segment length m: linear in the text.
 */

/** One compiled segment: its code points, with ANY where the pattern has `_`. */
interface Segment {
  readonly chars: readonly number[]
  /** Shift-And masks: bit i is set where position i accepts the character (or is `_`). */
  readonly masks: ReadonlyMap<number, Uint32Array>
  /** The mask of a character the segment does not name: the positions of `_`. */
  readonly anyMask: Uint32Array
}

const ANY = -1

export class LikePattern {
  readonly source: string
  readonly #segments: readonly Segment[]

  constructor(pattern: string) {
    this.source = pattern
    const segments: number[][] = [[]]
    const cps = codePoints(pattern)
    for (let i = 0; i < cps.length; i++) {
      const c = cps[i]!
      if (c === BACKSLASH && (cps[i + 1] === PERCENT || cps[i + 1] === UNDERSCORE)) {
        segments[segments.length - 1]!.push(cps[++i]!)
      } else if (c === PERCENT) {
        segments.push([])
      } else {
        segments[segments.length - 1]!.push(c === UNDERSCORE ? ANY : c)
      }
    }
    this.#segments = segments.map(compileSegment)
  }

  matches(text: string): boolean {
    const t = codePoints(text)
    const segs = this.#segments
    const first = segs[0]!
    if (segs.length === 1) return t.length === first.chars.length && matchesAt(t, 0, first)
    if (!matchesAt(t, 0, first)) return false
    let pos = first.chars.length
    for (let i = 1; i < segs.length - 1; i++) {
      const seg = segs[i]!
      if (seg.chars.length === 0) continue
      const end = findEnd(t, pos, seg)
      if (end < 0) return false
      pos = end
    }
    const last = segs[segs.length - 1]!
    const start = t.length - last.chars.length
    return start >= pos && matchesAt(t, start, last)
  }
}

const BACKSLASH = 0x5c
const PERCENT = 0x25
const UNDERSCORE = 0x5f

function codePoints(s: string): number[] {
  const out: number[] = []
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!
    out.push(c)
    if (c > 0xffff) i++
  }
  return out
}

function compileSegment(chars: number[]): Segment {
  const words = Math.max(1, Math.ceil(chars.length / 32))
  const anyMask = new Uint32Array(words)
  const masks = new Map<number, Uint32Array>()
  chars.forEach((c, i) => {
    if (c === ANY) anyMask[i >>> 5]! |= 1 << (i & 31)
  })
  chars.forEach((c, i) => {
    if (c === ANY) return
    let mask = masks.get(c)
    if (mask === undefined) masks.set(c, (mask = Uint32Array.from(anyMask)))
    mask[i >>> 5]! |= 1 << (i & 31)
  })
  // A position that is `_` accepts every character, including ones named elsewhere in the segment.
  return { chars, masks, anyMask }
}

function matchesAt(t: readonly number[], at: number, seg: Segment): boolean {
  const chars = seg.chars
  if (at < 0 || at + chars.length > t.length) return false
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] !== ANY && chars[i] !== t[at + i]) return false
  }
  return true
}

/** The end (exclusive) of the leftmost occurrence of `seg` in `t` starting at or after `from`, or -1. */
function findEnd(t: readonly number[], from: number, seg: Segment): number {
  const m = seg.chars.length
  const words = seg.anyMask.length
  const lastWord = (m - 1) >>> 5
  const lastBit = 1 << ((m - 1) & 31)
  const state = new Uint32Array(words)
  for (let j = from; j < t.length; j++) {
    const mask = seg.masks.get(t[j]!) ?? seg.anyMask
    // state = ((state << 1) | 1) & mask, across words.
    let carry = 1
    for (let w = 0; w < words; w++) {
      const s = state[w]!
      state[w] = ((s << 1) | carry) & mask[w]!
      carry = s >>> 31
    }
    if ((state[lastWord]! & lastBit) !== 0) return j + 1
  }
  return -1
}
