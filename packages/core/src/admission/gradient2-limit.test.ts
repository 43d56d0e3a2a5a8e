import { describe, expect, it } from 'vitest'
import { Gradient2Limit } from './gradient2-limit.js'

/** Feeds `windows` windows of `perWindow` samples at latency `rtt`, with `inflight` in use. */
function run(g: Gradient2Limit, from: number, windows: number, o: { rtt: number; inflight?: number; loopDelay?: number; perWindow?: number }): number {
  let t = from
  for (let w = 0; w < windows; w++) {
    for (let i = 0; i < (o.perWindow ?? 10); i++) {
      g.sample(t, o.rtt, o.inflight ?? g.limit, o.loopDelay ?? 0)
      t += 100 / (o.perWindow ?? 10)
    }
  }
  return t
}

describe('Gradient2Limit', () => {
  it('grows while latency stays at its long-term average and the limit is in use', () => {
    const g = new Gradient2Limit({ initialLimit: 10, maxLimit: 100, window: 100 })
    run(g, 0, 50, { rtt: 20 })
    expect(g.limit).toBeGreaterThan(30)
    expect(g.limit).toBeLessThanOrEqual(100)
  })

  it('does not grow while under half the limit is in use (app-limited)', () => {
    const g = new Gradient2Limit({ initialLimit: 40, window: 100 })
    run(g, 0, 50, { rtt: 20, inflight: 5 })
    expect(g.limit).toBe(40)
  })

  it('shrinks when latency rises well past the tolerance, down to the minimum at worst', () => {
    const g = new Gradient2Limit({ initialLimit: 50, minLimit: 5, window: 100, longWindow: 100 })
    const t = run(g, 0, 30, { rtt: 10 })
    const before = g.limit
    run(g, t, 30, { rtt: 100 })
    expect(g.limit).toBeLessThan(before / 2)
    expect(g.limit).toBeGreaterThanOrEqual(5)
  })

  it('tolerates latency within the tolerance without shrinking', () => {
    const g = new Gradient2Limit({ initialLimit: 20, maxLimit: 20, tolerance: 2, window: 100 })
    const t = run(g, 0, 20, { rtt: 10 })
    run(g, t, 5, { rtt: 18 })
    expect(g.limit).toBe(20)
  })

  it('shrinks while the event loop is late even when latency looks steady, and does not grow', () => {
    const g = new Gradient2Limit({ initialLimit: 40, window: 100, eventLoopDelay: 50 })
    const t = run(g, 0, 10, { rtt: 10 })
    const before = g.limit
    run(g, t, 10, { rtt: 10, loopDelay: 200, inflight: 1 })
    expect(g.limit).toBeLessThan(before * 0.6)
  })

  it('moves at most once per window, only at window ends', () => {
    const g = new Gradient2Limit({ initialLimit: 10, window: 1000 })
    const changedAt: number[] = []
    for (let t = 0; t < 10_000; t++) if (g.sample(t, 5, g.limit, 0)) changedAt.push(t)
    expect(changedAt.length).toBeGreaterThan(0)
    expect(changedAt.every((t) => t % 1000 === 0)).toBe(true)
  })

  it('recovers once latency falls back after a slow spell', () => {
    const g = new Gradient2Limit({ initialLimit: 50, minLimit: 2, window: 100 })
    let t = run(g, 0, 20, { rtt: 10 })
    t = run(g, t, 40, { rtt: 200 })
    const low = g.limit
    run(g, t, 100, { rtt: 10 })
    expect(g.limit).toBeGreaterThan(low * 2)
  })
})
