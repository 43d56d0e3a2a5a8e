/**
 * Streams state changes to watchers as NDJSON (default) or server-sent events. Each event is
 * encoded once and written to every matching watcher; a watcher that stops reading is cut off
 * once `maxBuffer` bytes are queued for it (it resumes with `since=` its last resourceVersion).
 */
import type { ServerResponse } from 'node:http'
import type { StoredObject, WatchEvent } from '@meshlet/core'
import type { Logger } from '../logger.js'
import type { ControlState } from '../state/control-state.js'

export interface WatchFilter {
  /** Kind names (`ServicePolicy`, `Instance`); undefined: every kind. */
  kinds?: ReadonlySet<string> | undefined
  namespace?: string | undefined
}

interface Watcher {
  res: ServerResponse
  sse: boolean
  filter: WatchFilter
}

export interface WatchHubOptions {
  bookmarkInterval: number
  maxBuffer: number
  log: Logger
}

export class WatchHub {
  readonly #state: ControlState
  readonly #options: WatchHubOptions
  readonly #watchers = new Set<Watcher>()
  readonly #unsubscribe: () => void
  readonly #timer: NodeJS.Timeout

  constructor(state: ControlState, options: WatchHubOptions) {
    this.#state = state
    this.#options = options
    this.#unsubscribe = state.subscribe((e) => this.#publish(e))
    this.#timer = setInterval(() => this.#publish({ type: 'BOOKMARK', resourceVersion: state.resourceVersion, object: null }), options.bookmarkInterval)
    this.#timer.unref()
  }

  get size(): number {
    return this.#watchers.size
  }

  /**
   * Starts a watch: with `since`, the retained events after it (the caller has checked it is
   * retained), else every current object as ADDED; then a BOOKMARK at the current
   * resourceVersion; then live changes. Synchronous, so no change can fall in between.
   */
  open(res: ServerResponse, options: { sse: boolean; since?: number | undefined; filter: WatchFilter }): void {
    const w: Watcher = { res, sse: options.sse, filter: options.filter }
    res.writeHead(200, {
      'content-type': options.sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    })
    const initial: WatchEvent[] = []
    if (options.since !== undefined) {
      const events = this.#state.eventsSince(options.since)
      if (events !== 'resync') initial.push(...events)
    } else {
      for (const object of [...this.#state.allResources(), ...this.#state.instances()]) {
        initial.push({ type: 'ADDED', resourceVersion: object.metadata.resourceVersion ?? 0, object })
      }
    }
    initial.push({ type: 'BOOKMARK', resourceVersion: this.#state.resourceVersion, object: null })
    const parts: string[] = []
    for (const e of initial) if (matches(e, w.filter)) parts.push(encode(e, w.sse, JSON.stringify(e)))
    res.write(parts.join(''))
    this.#watchers.add(w)
    res.on('close', () => this.#watchers.delete(w))
  }

  /** Ends every watch (clients reconnect and resume) and stops following the state. */
  close(): void {
    clearInterval(this.#timer)
    this.#unsubscribe()
    for (const w of this.#watchers) w.res.end()
    this.#watchers.clear()
  }

  #publish(e: WatchEvent): void {
    let json: string | undefined
    let ndjson: string | undefined
    let sse: string | undefined
    for (const w of this.#watchers) {
      if (!matches(e, w.filter)) continue
      json ??= JSON.stringify(e)
      const text = w.sse ? (sse ??= encode(e, true, json)) : (ndjson ??= encode(e, false, json))
      w.res.write(text)
      if (w.res.writableLength > this.#options.maxBuffer) {
        this.#options.log.warn(`a watcher (${w.res.req.socket.remoteAddress ?? 'unknown'}) fell ${w.res.writableLength} bytes behind; closing its watch so it resumes with since=`)
        this.#watchers.delete(w)
        w.res.destroy()
      }
    }
  }
}

function matches(e: WatchEvent, f: WatchFilter): boolean {
  if (e.object === null) return true
  const o: StoredObject = e.object
  return (f.kinds === undefined || f.kinds.has(o.kind)) && (f.namespace === undefined || o.metadata.namespace === f.namespace)
}

function encode(e: WatchEvent, sse: boolean, json: string): string {
  return sse ? `id: ${e.resourceVersion}\ndata: ${json}\n\n` : `${json}\n`
}
