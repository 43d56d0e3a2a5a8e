/**
 * Choice rules over the ready endpoints. Each is given a non-empty array and returns one element.
 * Power of two choices (Mitzenmacher): two distinct random candidates, the cheaper wins; this keeps
 * herding away from a single "best" endpoint that every client would otherwise pick at once.
 */
import type { BalancerType } from '../config/mesh-options.js'
import type { EndpointState } from './endpoint-state.js'

/** `key`: the call's hash key, for strategies that use one (ring-hash); others ignore it. */
export type PickStrategy = (ready: readonly EndpointState[], now: number, key?: string) => EndpointState

/** Large cost for an endpoint with requests pending but no latency sample yet (Finagle's Penalty). */
const UNMEASURED_PENDING = 1e6

function p2c(cost: (e: EndpointState, now: number) => number): PickStrategy {
  return (ready, now) => {
    const n = ready.length
    if (n === 1) return ready[0]!
    const i = (Math.random() * n) | 0
    let j = (Math.random() * (n - 1)) | 0
    if (j >= i) j++
    const a = ready[i]!
    const b = ready[j]!
    return cost(a, now) <= cost(b, now) ? a : b
  }
}

export function peakEwmaStrategy(decay: number): PickStrategy {
  return p2c((e, now) => {
    const latency = e.latency(now, decay)
    const base = latency === 0 && e.inflight > 0 ? UNMEASURED_PENDING + e.inflight : latency * (e.inflight + 1)
    // A server that reports itself busy (event-loop utilization) costs up to twice as much.
    return base * (1 + e.reportedLoad)
  })
}

export const leastRequestStrategy: PickStrategy = p2c((e) => e.inflight)

export function roundRobinStrategy(): PickStrategy {
  let next = (Math.random() * 1024) | 0
  return (ready) => ready[next++ % ready.length]!
}

const VNODES = 100

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // Final avalanche (murmur3 fmix32) so that similar keys spread over the ring.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * Consistent hashing with bounded loads (Mirrokni et al., 2017): a key goes to the first endpoint
 * clockwise from its hash whose in-flight load is within `loadFactor` × the average, so a hot key
 * spills to the next endpoint instead of overloading one. Without a key it falls back to `fallback`.
 * The ring is rebuilt when the ready set changes (the snapshot array is replaced, never mutated).
 */
export function ringHashStrategy(loadFactor: number, fallback: PickStrategy): PickStrategy {
  let built: readonly EndpointState[] | undefined
  let points = new Uint32Array(0)
  let owners: EndpointState[] = []
  const build = (ready: readonly EndpointState[]) => {
    const entries: [number, EndpointState][] = []
    for (const e of ready) for (let v = 0; v < VNODES; v++) entries.push([fnv1a(`${e.url}#${v}`), e])
    entries.sort((a, b) => a[0] - b[0])
    points = Uint32Array.from(entries, (x) => x[0])
    owners = entries.map((x) => x[1])
    built = ready
  }
  return (ready, now, key) => {
    if (key === undefined || ready.length === 1) return fallback(ready, now)
    if (built !== ready) build(ready)
    const h = fnv1a(key)
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < h) lo = mid + 1
      else hi = mid
    }
    let total = 0
    for (const e of ready) total += e.inflight
    const cap = Math.ceil(((total + 1) / ready.length) * loadFactor)
    for (let i = 0; i < owners.length; i++) {
      const e = owners[(lo + i) % owners.length]!
      if (e.inflight < cap) return e
    }
    return owners[lo % owners.length]!
  }
}

export function strategyFor(type: BalancerType, decay: number, loadFactor = 1.25): PickStrategy {
  switch (type) {
    case 'ring-hash':
      return ringHashStrategy(loadFactor, peakEwmaStrategy(decay))
    case 'p2c-peak-ewma':
      return peakEwmaStrategy(decay)
    case 'least-request':
      return leastRequestStrategy
    case 'round-robin':
      return roundRobinStrategy()
  }
}
