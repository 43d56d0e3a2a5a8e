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
  it('starts with a reserve of minPerSecond × ttl', () => {
    const clock = fakeClock()
    expect(new RetryBudget(20, 10, 10_000, clock.now).balance()).toBe(100)
    expect(new RetryBudget(20, 5, 2000, clock.now).balance()).toBe(10)
    expect(drain(new RetryBudget(20, 10, 10_000, clock.now))).toBe(100)
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

  it('slides its window: deposits and withdrawals older than ttl expire', () => {
    const clock = fakeClock(5000)
    const budget = new RetryBudget(100, 0, 10_000, clock.now)
    for (let i = 0; i < 10; i++) budget.deposit()
    expect(budget.tryWithdraw()).toBe(true)
    expect(budget.balance()).toBe(9)
    clock.advance(9000)
    expect(budget.balance()).toBe(9)
    budget.deposit() // lands in a newer bucket
    expect(budget.balance()).toBe(10)
    clock.advance(1000) // the first bucket is now a full ttl old
    budget.deposit()
    expect(budget.balance()).toBe(2)
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
    expect(budget.balance()).toBeCloseTo(100.2, 9)
  })

  it('bounds retries to percent × requests + reserve when every call wants to retry', () => {
    const clock = fakeClock()
    const budget = new RetryBudget(20, 10, 10_000, clock.now)
    for (let i = 0; i < 1000; i++) budget.deposit()
    expect(drain(budget)).toBe(0.2 * 1000 + 100)
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
    expect(granted).toBeGreaterThanOrEqual(295)
    expect(granted).toBeLessThanOrEqual(300)
  })
})
