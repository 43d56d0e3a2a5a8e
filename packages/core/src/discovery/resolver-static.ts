import { type EndpointAddress, type Resolver, type ResolverListener } from './resolver.js'

/** A fixed list of endpoints, from options. */
export class StaticResolver implements Resolver {
  readonly #endpoints: readonly EndpointAddress[]

  constructor(endpoints: readonly EndpointAddress[]) {
    this.#endpoints = endpoints
  }

  start(listener: ResolverListener): void {
    listener.onChanges(this.#endpoints.map((endpoint) => ({ type: 'insert', endpoint })))
  }

  close(): void {}

  describe(): string {
    return `static list (${this.#endpoints.map((e) => e.url).join(', ')})`
  }
}
