/**
 * The destinations of one mesh, by service name.
 *
 * Contract:
 * - Static destinations (from `services` in the options) are added once and stay until closeAll().
 * - A name with no destination is offered to `create` on first use (`get`); what it returns (a
 *   destination for a service the control endpoint knows, with the ControlResolver that feeds it)
 *   is kept as a dynamic destination. `peek` never creates and never counts as a use.
 * - Idle eviction: a dynamic destination not used through `get` for `idleTimeout` ms, with no call
 *   in flight on any of its endpoints, is closed and dropped by `evictIdle()` (run every
 *   idleTimeout/2 while the registry is open); the next `get` creates it afresh from what the
 *   control endpoint says then. Static destinations are never evicted.
 * - After closeAll() begins, `get` creates nothing and the sweep stops.
 */
import type { Destination } from './destination.js'
import type { ControlResolver } from './discovery/resolver-control.js'

export interface DynamicDestination {
  readonly destination: Destination
  /** Where the control endpoint's endpoint sets for this service go. */
  readonly resolver: ControlResolver
  /** Runs once the destination is registered (so what it applies can look the destination up by name). */
  readonly init?: (() => void) | undefined
}

export interface DestinationRegistryOptions {
  /** Makes a destination for a name that has none, or undefined when the name is no mesh service. */
  create?: ((name: string) => DynamicDestination | undefined) | undefined
  /** Idle time (ms) after which a dynamic destination is evicted; Infinity: never. */
  idleTimeout?: number
  /** The clock for idle times (ms). Default Date.now. */
  now?: () => number
}

interface Entry {
  readonly destination: Destination
  readonly resolver: ControlResolver | undefined
  lastUsed: number
}

export class DestinationRegistry {
  readonly #entries = new Map<string, Entry>()
  readonly #create: DestinationRegistryOptions['create']
  readonly #idleTimeout: number
  readonly #now: () => number
  #sweep: NodeJS.Timeout | undefined
  #closing = false

  constructor(options: DestinationRegistryOptions = {}) {
    this.#create = options.create
    this.#idleTimeout = options.idleTimeout ?? Infinity
    this.#now = options.now ?? Date.now
  }

  /** Adds a statically configured destination (never evicted). */
  addStatic(name: string, destination: Destination): void {
    this.#entries.set(name, { destination, resolver: undefined, lastUsed: this.#now() })
  }

  /** The destination for `name`, created on first use when `create` knows the name; counts as a use. */
  get(name: string): Destination | undefined {
    const e = this.#entries.get(name)
    if (e !== undefined) {
      e.lastUsed = this.#now()
      return e.destination
    }
    if (this.#closing || this.#create === undefined) return undefined
    const made = this.#create(name)
    if (made === undefined) return undefined
    this.#entries.set(name, { destination: made.destination, resolver: made.resolver, lastUsed: this.#now() })
    made.init?.()
    this.#startSweep()
    return made.destination
  }

  /** The destination for `name` if there is one; neither creates nor counts as a use. */
  peek(name: string): Destination | undefined {
    return this.#entries.get(name)?.destination
  }

  /** True for a destination from the options (whose endpoints the control endpoint must not replace). */
  isStatic(name: string): boolean {
    const e = this.#entries.get(name)
    return e !== undefined && e.resolver === undefined
  }

  /** The ControlResolver of a dynamic destination. */
  controlResolver(name: string): ControlResolver | undefined {
    return this.#entries.get(name)?.resolver
  }

  names(): string[] {
    return [...this.#entries.keys()]
  }

  destinations(): Destination[] {
    return [...this.#entries.values()].map((e) => e.destination)
  }

  /** Closes and drops every dynamic destination idle for idleTimeout with nothing in flight; returns their names. */
  evictIdle(): string[] {
    const now = this.#now()
    const evicted: string[] = []
    for (const [name, e] of this.#entries) {
      if (e.resolver === undefined || now - e.lastUsed < this.#idleTimeout) continue
      if (e.destination.balancer.snapshot().some((s) => s.inflight > 0)) continue
      this.#entries.delete(name)
      evicted.push(name)
      void e.destination.close()
    }
    if (![...this.#entries.values()].some((e) => e.resolver !== undefined)) this.#stopSweep()
    return evicted
  }

  /** Stops creating and evicting, and closes every destination (their pools included). */
  async closeAll(): Promise<void> {
    this.#closing = true
    this.#stopSweep()
    await Promise.allSettled(this.destinations().map((d) => d.close()))
  }

  #startSweep(): void {
    if (this.#sweep !== undefined || !Number.isFinite(this.#idleTimeout)) return
    this.#sweep = setInterval(() => this.evictIdle(), Math.max(1000, Math.floor(this.#idleTimeout / 2)))
    this.#sweep.unref()
  }

  #stopSweep(): void {
    clearInterval(this.#sweep)
    this.#sweep = undefined
  }
}
