import { describe, expect, it } from 'vitest'
import { RetryBudget } from './retry-budget.js'

function fakeClock(start = 0) {
  let now = start
  return { now: () => now, advance: (ms: number) => void (now += ms) }
}

/** Withdraws until the budget refuses; returns how many were granted. */
function drain(budget: RetryBudget, limit = 100_000): number {
  let n = 0
  while (n < limit && budget.tryWithdraw()) n++
  return n
}

describe('RetryBudget', () => {
  it('spends its reserve at minPerSecond: at most two buckets\' worth at once, minPerSecond × ttl over the window', () => {
    const clock = fakeClock()
    expect(new RetryBudget(20, 10, 10_000, clock.now).balance()).toBe(20)
    expect(new RetryBudget(20, 5, 2000, clock.now).balance()).toBe(2)
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    const perSecond: number[] = []
    for (let s = 0; s < 10; s++) {
      perSecond.push(drain(budget))
      clock.advance(1000)
    }
    expect(perSecond.reduce((a, b) => a + b)).toBe(100)
    for (let s = 1; s < 10; s++) expect(perSecond[s - 1]! + perSecond[s]!).toBeLessThanOrEqual(20)
  })

  it('adds percent of deposits to the balance', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 0, 10_000, clock.now)
    expect(budget.balance()).toBe(0)
    expect(budget.tryWithdraw()).toBe(false)
    for (let i = 0; i < 50; i++) budget.deposit()
    expect(budget.balance()).toBeCloseTo(10, 9)
    expect(drain(budget)).toBe(10)
  })

  it('decrements the balance on each withdrawal and refuses below one', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(50, 0, 10_000, clock.now)
    budget.deposit()
    budget.deposit()
    budget.deposit()
    expect(budget.balance()).toBe(1.5)
    expect(budget.tryWithdraw()).toBe(true)
    expect(budget.balance()).toBe(0.5)
    expect(budget.tryWithdraw()).toBe(false)
    expect(budget.balance()).toBe(0.5)
  })

  it('slides its windows: a burst draws on the last two buckets, and nothing outlives the ttl', () => {
    const clock = fakeClock(5000)
    const budget = new RetryBudget(100, 0, 10_000, clock.now)
    for (let i = 0; i < 10; i++) budget.deposit()
    expect(budget.tryWithdraw()).toBe(true)
    expect(budget.balance()).toBe(9)
    clock.advance(1000) // the previous bucket still counts
    expect(budget.balance()).toBe(9)
    clock.advance(1000) // two buckets on, those deposits no longer fund a burst
    expect(budget.balance()).toBe(0)
    budget.deposit()
    expect(budget.balance()).toBe(1)
    clock.advance(60_000) // far past the window: everything expires
    expect(budget.tryWithdraw()).toBe(false)
    expect(budget.balance()).toBe(0)
  })

  it('keeps the reserve while deposits come and go', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    for (let i = 0; i < 100; i++) budget.deposit()
    clock.advance(20_000)
    budget.deposit()
    expect(budget.balance()).toBeCloseTo(20.2, 9)
  })

  it('bounds a burst of retries to percent × recent requests + two buckets of reserve when every call wants to retry', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    for (let i = 0; i < 1000; i++) budget.deposit()
    expect(drain(budget)).toBe(0.2 * 1000 + 20)
  })

  it('does not let tokens saved while healthy go out at once when everything starts failing', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    // Nine healthy seconds at 100 calls/s: the window saves 180 + 100 tokens.
    for (let s = 0; s < 9; s++) {
      for (let i = 0; i < 100; i++) budget.deposit()
      clock.advance(1000)
    }
    // Then every call fails and wants to retry: per second, retries stay near 20% + 10/s.
    const perSecond: number[] = []
    for (let s = 0; s < 3; s++) {
      let n = 0
      for (let i = 0; i < 100; i++) {
        budget.deposit()
        n += drain(budget)
      }
      perSecond.push(n)
      clock.advance(1000)
    }
    for (const n of perSecond) expect(n).toBeLessThanOrEqual(0.2 * 200 + 20) // two buckets' deposits and reserve
    expect(perSecond.reduce((a, b) => a + b)).toBeLessThanOrEqual(3 * (0.2 * 100 + 10) + 40)
  })

  it('bounds retries the same way when deposits and withdrawals interleave over the window', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    let granted = 0
    // 1000 calls spread over 5 s (inside one ttl), each retrying for as long as the budget allows.
    for (let i = 0; i < 1000; i++) {
      budget.deposit()
      granted += drain(budget)
      clock.advance(5)
    }
    // 20% of 1000, plus 10/s over the 5 s, plus up to one bucket of reserve at the edge of the two-bucket window.
    expect(granted).toBeGreaterThanOrEqual(0.2 * 1000 + 10 * 5)
    expect(granted).toBeLessThanOrEqual(0.2 * 1000 + 10 * 5 + 10)
  })
})
