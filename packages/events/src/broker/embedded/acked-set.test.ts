import { describe, expect, it } from 'vitest'
import { AckedSet } from './acked-set.js'

describe('AckedSet', () => {
  it('moves the cursor over in-order acks and keeps out-of-order ones as ranges', () => {
    const acked = new AckedSet(10)
    expect(acked.add(10)).toBe(true)
    expect(acked.cursor).toBe(11)
    for (const seq of [13, 15, 14, 18]) acked.add(seq)
    expect(acked.ranges()).toEqual([[13, 16], [18, 19]])
    expect(acked.aboveCursor).toBe(4)
    expect(acked.has(14)).toBe(true)
    expect(acked.has(16)).toBe(false)
    expect(acked.add(14)).toBe(false)
    acked.add(12)
    acked.add(11)
    // 11 closes the gap to the first range: the cursor jumps past it.
    expect(acked.cursor).toBe(16)
    expect(acked.ranges()).toEqual([[18, 19]])
    expect(acked.aboveCursor).toBe(1)
    acked.add(17)
    acked.add(16)
    expect(acked.cursor).toBe(19)
    expect(acked.ranges()).toEqual([])
  })

  it('merges a seq that joins two ranges, and treats seqs below the cursor as acked', () => {
    const acked = new AckedSet(1, [[3, 5], [6, 8]])
    expect(acked.aboveCursor).toBe(4)
    acked.add(5)
    expect(acked.ranges()).toEqual([[3, 8]])
    expect(acked.has(0)).toBe(true)
    expect(acked.add(0)).toBe(false)
  })

  it('matches a plain set over random ack orders', () => {
    for (let round = 0; round < 50; round++) {
      const seqs = Array.from({ length: 200 }, (_, i) => i + 1).sort(() => Math.random() - 0.5)
      const acked = new AckedSet(1)
      const plain = new Set<number>()
      for (const seq of seqs.slice(0, 120)) {
        acked.add(seq)
        plain.add(seq)
      }
      let cursor = 1
      while (plain.has(cursor)) cursor++
      expect(acked.cursor).toBe(cursor)
      expect(acked.aboveCursor).toBe([...plain].filter((s) => s > cursor).length)
      for (let seq = 1; seq <= 200; seq++) expect(acked.has(seq)).toBe(plain.has(seq))
    }
  })
})
