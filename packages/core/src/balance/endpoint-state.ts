import type { EndpointAddress } from '../discovery/resolver.js'

/** A transport resource tied to an endpoint (an undici Pool, a gRPC subchannel), closed when the endpoint goes. */
export interface EndpointResource {
  close(): unknown
}

/**
 * What the balancer knows about one endpoint. Latency is a peak-EWMA (Finagle, Linkerd): a slower
 * sample replaces the average at once, faster ones pull it down with time constant `decay`, and
 * reading the cost decays it toward zero so a penalized endpoint is probed again later.
 */
export class EndpointState {
  readonly address: EndpointAddress
  inflight = 0
  requests = 0
  failures = 0
  consecutiveFailures = 0
  /** Failures since the outlier sweep last looked. */
  recentFailures = 0
  /** performance.now() until which the endpoint is ejected; 0 when it is not. */
  ejectedUntil = 0
  ejections = 0
  /** Utilization the server reported in its load header (event-loop utilization, 0..1), or 0. */
  reportedLoad = 0
  #ewma = 0
  #stamp = performance.now()
  readonly #resources = new Map<string, EndpointResource>()

  constructor(address: EndpointAddress) {
    this.address = address
  }

  get url(): string {
    return this.address.url
  }

  /** Peak-EWMA latency in ms, decayed to `now`. */
  latency(now: number, decay: number): number {
    this.observe(0, now, decay)
    return this.#ewma
  }

  observe(rttMs: number, now: number, decay: number): void {
    const td = now - this.#stamp
    if (td > 0) this.#stamp = now
    if (rttMs > this.#ewma) this.#ewma = rttMs
    else if (td > 0) {
      const w = Math.exp(-td / decay)
      this.#ewma = this.#ewma * w + rttMs * (1 - w)
    }
  }

  /** Resource registered under `key` (one per transport), created on first use. */
  resource<T extends EndpointResource>(key: string, create: () => T): T {
    let r = this.#resources.get(key) as T | undefined
    if (r === undefined) {
      r = create()
      this.#resources.set(key, r)
    }
    return r
  }

  async closeResources(): Promise<void> {
    const all = [...this.#resources.values()]
    this.#resources.clear()
    // async: a close() that throws synchronously must neither skip the others nor reject (callers use `void`).
    await Promise.allSettled(all.map(async (r) => r.close()))
  }
}
