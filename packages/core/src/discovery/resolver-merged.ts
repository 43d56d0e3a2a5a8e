import type { EndpointChange, Resolver, ResolverListener } from './resolver.js'

/**
 * Several resolvers as one (a service configured with fixed URLs and dns:// names side by side).
 *
 * Contract: the first `onChanges` comes once every part has reported its first snapshot, and
 * carries all of their changes together, so the balancer never sees a partial first set; after
 * that each part's changes pass straight through. Errors of any part pass through at once.
 * `close()` closes every part.
 */
export class MergedResolver implements Resolver {
  constructor(readonly parts: readonly Resolver[]) {}

  start(listener: ResolverListener): void {
    let pending = this.parts.length
    if (pending === 0) return listener.onChanges([])
    // Changes held back until every part has reported, so the first snapshot is complete.
    const initial: EndpointChange[] = []
    for (const part of this.parts) {
      let first = true
      part.start({
        onChanges: (changes) => {
          if (pending === 0) return listener.onChanges(changes)
          for (const c of changes) initial.push(c)
          if (first) {
            first = false
            pending--
          }
          if (pending === 0) listener.onChanges(initial.splice(0))
        },
        onError: (e) => listener.onError(e),
      })
    }
  }

  close(): void {
    for (const p of this.parts) p.close()
  }

  describe(): string {
    return this.parts.map((p) => p.describe()).join(' + ')
  }
}
