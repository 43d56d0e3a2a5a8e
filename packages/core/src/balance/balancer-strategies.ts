/**
 * Choice rules over the ready endpoints. Each is given a non-empty array and returns one element.
 * Power of two choices (Mitzenmacher): two distinct random candidates, the cheaper wins; this keeps
 * herding away from a single "best" endpoint that every client would otherwise pick at once.
 */
import type { BalancerType } from '../config/mesh-options.js'
import type { EndpointState } from './endpoint-state.js'

export type PickStrategy = (ready: readonly EndpointState[], now: number) => EndpointState

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

export function strategyFor(type: BalancerType, decay: number): PickStrategy {
  switch (type) {
    case 'p2c-peak-ewma':
      return peakEwmaStrategy(decay)
    case 'least-request':
      return leastRequestStrategy
    case 'round-robin':
      return roundRobinStrategy()
  }
}
