/**
 * The events a watch starts with (every current object as ADDED, or the retained changes after
 * `since`), encoded once for all the watchers that start at the same point, in pages.
 *
 * Contract:
 * - A WatchStart holds references to the events' objects, never their encoding as a whole: pages
 *   (about PAGE_BYTES of framed events each, as bytes: written to every socket without another
 *   conversion) are encoded when a watcher first asks for them and kept in a cache of at most `cacheBytes`, so watchers reading together share each page and one
 *   far behind re-encodes what was evicted instead of pinning it.
 * - Page `k` always holds the same events, however often it is encoded: its bounds are fixed the
 *   first time, and the objects never change (the state replaces objects, it does not mutate them).
 */
import type { StoredObject, WatchEvent } from '@meshlet/core'

/** The size a page grows to before it is cut (a page holds one event at least, however large). */
export const PAGE_BYTES = 64 * 1024

export class WatchStart {
  /** The resourceVersion the start shows the state at; the watch goes live after it. */
  readonly resourceVersion: number
  readonly #events: readonly (WatchEvent | StoredObject)[]
  readonly #sse: boolean
  readonly #cacheBytes: number
  /** `#bounds[k]` is the index of page k's first event; known for every page encoded once. */
  readonly #bounds: number[] = [0]
  readonly #cache = new Map<number, Buffer>()
  #cachedBytes = 0
  /** Watchers streaming this start; the hub forgets it when none is left. */
  readers = 0
  /** What it shows, as the hub looks starts up for sharing. */
  readonly key: string

  /**
   * `events`: objects (a snapshot, each sent as ADDED at its own resourceVersion) or events (a
   * replay), already filtered for the watchers that share this start.
   */
  constructor(resourceVersion: number, events: readonly (WatchEvent | StoredObject)[], options: { key: string; sse: boolean; cacheBytes: number }) {
    this.resourceVersion = resourceVersion
    this.key = options.key
    this.#events = events
    this.#sse = options.sse
    this.#cacheBytes = options.cacheBytes
  }

  get size(): number {
    return this.#events.length
  }

  /** Page `k`, framed as NDJSON or SSE, in UTF-8; undefined past the last page. */
  page(k: number): Buffer | undefined {
    const cached = this.#cache.get(k)
    if (cached !== undefined) {
      // Touched pages move to the back: the cache evicts the least recently read first.
      this.#cache.delete(k)
      this.#cache.set(k, cached)
      return cached
    }
    // Pages are read in order by each watcher, so page k-1's end is known before page k is asked for.
    const from = this.#bounds[k]
    if (from === undefined || from >= this.#events.length) return undefined
    const parts: string[] = []
    let bytes = 0
    let i = from
    const end = this.#bounds[k + 1]
    while (i < this.#events.length && (end !== undefined ? i < end : bytes < PAGE_BYTES)) {
      const text = frame(toEvent(this.#events[i]!), this.#sse)
      parts.push(text)
      bytes += text.length
      i++
    }
    this.#bounds[k + 1] = i
    const text = Buffer.from(parts.join(''))
    this.#cache.set(k, text)
    this.#cachedBytes += text.length
    for (const [key, value] of this.#cache) {
      if (this.#cachedBytes <= this.#cacheBytes || key === k) break
      this.#cache.delete(key)
      this.#cachedBytes -= value.length
    }
    return text
  }

  /** Bytes held in encoded pages now (for tests and the bound above). */
  get cachedBytes(): number {
    return this.#cachedBytes
  }
}

function toEvent(x: WatchEvent | StoredObject): WatchEvent {
  return 'type' in x && 'object' in x ? x : { type: 'ADDED', resourceVersion: x.metadata.resourceVersion ?? 0, object: x }
}

/** One event as the stream carries it. */
export function frame(e: WatchEvent, sse: boolean, json = JSON.stringify(e)): string {
  return sse ? `id: ${e.resourceVersion}\ndata: ${json}\n\n` : `${json}\n`
}
