import { describe, expect, it } from 'vitest'
import { EndpointState } from './endpoint-state.js'
import { peakEwmaStrategy, ringHashStrategy } from './balancer-strategies.js'

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => new EndpointState({ url: `http://10.0.0.${i}:80`, protocol: 'http', host: `10.0.0.${i}`, port: 80 }))

describe('ring-hash with bounded load', () => {
  it('sends a key to the same endpoint every time and spreads keys over all endpoints', () => {
    const ready = endpoints(4)
    const pick = ringHashStrategy(1.25, peakEwmaStrategy(10_000))
    const owner = new Map<string, string>()
    for (let k = 0; k < 2000; k++) owner.set(`user-${k}`, pick(ready, 0, `user-${k}`).url)
    for (let k = 0; k < 2000; k++) expect(pick(ready, 0, `user-${k}`).url).toBe(owner.get(`user-${k}`))
    const share = new Map<string, number>()
    for (const url of owner.values()) share.set(url, (share.get(url) ?? 0) + 1)
    expect(share.size).toBe(4)
    for (const n of share.values()) expect(n).toBeGreaterThan(2000 * 0.15)
  })

  it('moves only the keys of a removed endpoint', () => {
    const ready = endpoints(5)
    const pick = ringHashStrategy(1.25, peakEwmaStrategy(10_000))
    const before = new Map<string, string>()
    for (let k = 0; k < 2000; k++) before.set(`k${k}`, pick(ready, 0, `k${k}`).url)
    const fewer = ready.filter((e) => e !== ready[2])
    let moved = 0
    for (let k = 0; k < 2000; k++) {
      const now = pick(fewer, 0, `k${k}`).url
      if (before.get(`k${k}`) !== ready[2]!.url) expect(now).toBe(before.get(`k${k}`))
      else moved++
    }
    expect(moved).toBeGreaterThan(0)
  })

  it('spills a hot key to the next endpoint once its owner carries more than loadFactor × the average', () => {
    const ready = endpoints(3)
    const pick = ringHashStrategy(1.25, peakEwmaStrategy(10_000))
    const chosen: EndpointState[] = []
    for (let i = 0; i < 30; i++) {
      const e = pick(ready, 0, 'hot')
      e.inflight++ // the call is in flight
      chosen.push(e)
    }
    const load = ready.map((e) => e.inflight)
    expect(Math.max(...load)).toBeLessThanOrEqual(Math.ceil((30 / 3) * 1.25) + 1)
    expect(load.filter((n) => n > 0).length).toBeGreaterThan(1)
    // With nothing in flight the owner is the same endpoint again.
    for (const e of ready) e.inflight = 0
    expect(pick(ready, 0, 'hot')).toBe(chosen[0])
  })

  it('falls back to the default choice without a key', () => {
    const ready = endpoints(2)
    const pick = ringHashStrategy(1.25, () => ready[1]!)
    expect(pick(ready, 0, undefined)).toBe(ready[1])
  })
})
