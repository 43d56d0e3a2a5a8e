import type { EndpointAddress, EndpointChange, Resolver, ResolverListener } from './resolver.js'

/**
 * The endpoints of one service as the control endpoint's registry has them. The control sync
 * pushes full sets; this turns them into insert/remove changes for the balancer.
 */
export class ControlResolver implements Resolver {
  readonly #service: string
  readonly #url: string
  #listener: ResolverListener | undefined
  #current = new Map<string, EndpointAddress>()
  #initial: EndpointAddress[]

  constructor(service: string, controlUrl: string, initial: EndpointAddress[]) {
    this.#service = service
    this.#url = controlUrl
    this.#initial = initial
  }

  start(listener: ResolverListener): void {
    this.#listener = listener
    this.update(this.#initial)
    this.#initial = []
  }

  /** Replaces the endpoint set. */
  update(endpoints: EndpointAddress[]): void {
    if (this.#listener === undefined) {
      this.#initial = endpoints
      return
    }
    const next = new Map(endpoints.map((e) => [e.url, e]))
    const changes: EndpointChange[] = []
    for (const [url, e] of next) {
      const old = this.#current.get(url)
      if (old === undefined) changes.push({ type: 'insert', endpoint: e })
      else if (old.zone !== e.zone || old.revision !== e.revision) changes.push({ type: 'remove', url }, { type: 'insert', endpoint: e })
    }
    for (const url of this.#current.keys()) if (!next.has(url)) changes.push({ type: 'remove', url })
    this.#current = next
    this.#listener.onChanges(changes)
  }

  close(): void {
    this.#listener = undefined
  }

  describe(): string {
    return `control endpoint ${this.#url} (service ${this.#service})`
  }
}
