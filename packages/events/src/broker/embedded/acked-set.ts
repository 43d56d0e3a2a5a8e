/**
 * Which seqs a consumer has acked: everything below `cursor` (the lowest seq not yet acked), plus
 * the seqs above it acked out of order, kept as disjoint ranges. Every gap between ranges holds a
 * delivery still pending, so there are at most maxInFlight + 1 ranges whatever the backlog.
 */
export type SeqRange = readonly [start: number, end: number]

export class AckedSet {
  #cursor: number
  /** Sorted, disjoint, non-adjacent `[start, end)` ranges, each starting above the cursor. */
  readonly #starts: number[] = []
  readonly #ends: number[] = []
  #above = 0

  constructor(cursor: number, ranges: readonly SeqRange[] = []) {
    this.#cursor = cursor
    for (const [start, end] of ranges) for (let seq = start; seq < end; seq++) this.add(seq)
  }

  /** The lowest seq not acked. */
  get cursor(): number {
    return this.#cursor
  }

  /** Seqs acked above the cursor. */
  get aboveCursor(): number {
    return this.#above
  }

  has(seq: number): boolean {
    if (seq < this.#cursor) return true
    const i = this.#rangeAfter(seq) - 1
    return i >= 0 && seq < this.#ends[i]!
  }

  /** Marks `seq` acked; false if it already was. */
  add(seq: number): boolean {
    if (this.has(seq)) return false
    if (seq === this.#cursor) {
      this.#cursor++
      if (this.#starts[0] === this.#cursor) {
        this.#cursor = this.#ends[0]!
        this.#above -= this.#ends[0]! - this.#starts[0]!
        this.#starts.shift()
        this.#ends.shift()
      }
      return true
    }
    this.#above++
    const next = this.#rangeAfter(seq)
    const joinsPrevious = next > 0 && this.#ends[next - 1] === seq
    const joinsNext = this.#starts[next] === seq + 1
    if (joinsPrevious && joinsNext) {
      this.#ends[next - 1] = this.#ends[next]!
      this.#starts.splice(next, 1)
      this.#ends.splice(next, 1)
    } else if (joinsPrevious) {
      this.#ends[next - 1] = seq + 1
    } else if (joinsNext) {
      this.#starts[next] = seq
    } else {
      this.#starts.splice(next, 0, seq)
      this.#ends.splice(next, 0, seq + 1)
    }
    return true
  }

  ranges(): SeqRange[] {
    return this.#starts.map((start, i) => [start, this.#ends[i]!] as const)
  }

  /** The index of the first range starting above `seq`. */
  #rangeAfter(seq: number): number {
    let lo = 0
    let hi = this.#starts.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#starts[mid]! <= seq) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
