import { describe, expect, it } from 'vitest'
import { CallerBuckets, TokenBucket } from './token-bucket.js'

function clock(start = 1000) {
  let t = start
  return { now: () => t, advance: (ms: number) => void (t += ms) }
}

describe('TokenBucket', () => {
  it('starts full: a burst of `burst` passes, the next one waits 1/rate', () => {
    const c = clock()
    const b = new TokenBucket(10, 5, c.now)
    for (let i = 0; i < 5; i++) expect(b.take()).toBe(0)
    expect(b.take()).toBe(100)
    expect(b.available()).toBeCloseTo(0)
  })

  it('refills at rate per second and never beyond burst', () => {
    const c = clock()
    const b = new TokenBucket(4, 2, c.now)
    b.take()
    b.take()
    c.advance(250)
    expect(b.take()).toBe(0)
    expect(b.take()).toBe(250)
    c.advance(10_000)
    expect(b.available()).toBe(2)
    expect(b.full()).toBe(true)
  })

  it('says how long until the next token when part of one has refilled', () => {
    const c = clock()
    const b = new TokenBucket(10, 1, c.now)
    b.take()
    c.advance(30)
    expect(b.take()).toBe(70)
    // A refused take spends nothing.
    c.advance(70)
    expect(b.take()).toBe(0)
  })

  it('admits rate × seconds + burst over a long run, within one token', () => {
    const c = clock()
    const b = new TokenBucket(50, 10, c.now)
    let admitted = 0
    // 1,000 requests per second offered for 10 s, one every ms.
    for (let ms = 0; ms < 10_000; ms++) {
      if (b.take() === 0) admitted++
      c.advance(1)
    }
    expect(Math.abs(admitted - (50 * 10 + 10))).toBeLessThanOrEqual(1)
  })

  it('handles fractional rates (one request every 2 s)', () => {
    const c = clock()
    const b = new TokenBucket(0.5, 1, c.now)
    expect(b.take()).toBe(0)
    expect(b.take()).toBe(2000)
    c.advance(1999)
    expect(b.take()).toBe(1)
    c.advance(1)
    expect(b.take()).toBe(0)
  })
})

describe('CallerBuckets', () => {
  it('limits each key on its own', () => {
    const c = clock()
    const k = new CallerBuckets(1, 2, c.now)
    expect([k.take('a'), k.take('a'), k.take('a') > 0]).toEqual([0, 0, true])
    expect([k.take('b'), k.take('b'), k.take('b') > 0]).toEqual([0, 0, true])
  })

  it('keeps at most maxKeys buckets, dropping full ones first, then the oldest tenth (at least one)', () => {
    const c = clock()
    const k = new CallerBuckets(1, 1, c.now, 3)
    k.take('a')
    k.take('b')
    k.take('c')
    expect(k.size).toBe(3)
    // No bucket is full yet: the oldest ("a") goes.
    k.take('d')
    expect(k.size).toBe(3)
    expect(k.take('b')).toBeGreaterThan(0) // "b" kept its empty bucket
    expect(k.take('a')).toBe(0) // "a" starts fresh
    // After a quiet spell every bucket is full: all are dropped to make room.
    c.advance(5000)
    k.take('e')
    expect(k.size).toBe(1)
  })
})

describe('CallerBuckets under a flood of distinct keys', () => {
  it('stays within maxKeys and evicts in batches', () => {
    const c = clock()
    const k = new CallerBuckets(1, 1, c.now, 1000)
    for (let i = 0; i < 1000; i++) k.take(`k${i}`)
    k.take('new')
    // The oldest tenth went at once, so the next 99 new keys need no sweep.
    expect(k.size).toBe(901)
    for (let i = 0; i < 50_000; i++) k.take(`flood${i}`)
    expect(k.size).toBeLessThanOrEqual(1000)
  })
})
