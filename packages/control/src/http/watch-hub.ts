/**
 * Streams state changes to watchers as NDJSON (default) or server-sent events.
 *
 * Contract:
 * - A watch starts with a WatchStart (every current object as ADDED, or the retained changes after
 *   `since`), then a BOOKMARK at its resourceVersion, then live changes. Watchers opening at the
 *   same resourceVersion with the same filter and framing share one WatchStart, so its pages are
 *   encoded once. A start is written a page at a time, waiting for 'drain' between pages: the
 *   server holds at most about a page plus the socket's buffer for a watcher, never the whole start.
 * - Changes that happen while a start is being written wait for it, encoded once and shared by
 *   every watcher. A watcher is cut off once more than `maxBuffer` bytes are queued for it (its
 *   socket's buffer included); it resumes with `since=` its last resourceVersion.
 * - Watches are bounded: at most `maxWatches` in all and `maxWatchesPerToken` per token (each role
 *   has one token); one more is refused with 429 MESHLET_ERR_QUOTA_EXCEEDED before anything is sent.
 */
import type { ServerResponse } from 'node:http'
import { ControlErrorCodes, type StoredObject, type WatchEvent } from '@meshlet/core'
import { ControlError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { ControlState } from '../state/control-state.js'
import { frame, WatchStart } from './watch-start.js'

/** Pages written before a watcher that keeps up gives the others a turn (about 256 KiB). */
const YIELD_PAGES = 4

export interface WatchFilter {
  /** Kind names (`ServicePolicy`, `Instance`); undefined: every kind. */
  kinds?: ReadonlySet<string> | undefined
  namespace?: string | undefined
}

interface Watcher {
  res: ServerResponse
  sse: boolean
  filter: WatchFilter
  token: string
  /** Until its start is written: the start, and the framed changes waiting for it (with their size). */
  start: WatchStart | undefined
  pending: string[]
  pendingBytes: number
  closed: boolean
}

export interface WatchHubOptions {
  bookmarkInterval: number
  maxBuffer: number
  /** Watches open at most, in all. */
  maxWatches: number
  /** Watches open at most with one token. */
  maxWatchesPerToken: number
  /** Encoded pages a WatchStart keeps for the watchers that share it. Default 8 MiB. */
  startCacheBytes?: number
  log: Logger
}

export class WatchHub {
  readonly #state: ControlState
  readonly #options: WatchHubOptions
  readonly #watchers = new Set<Watcher>()
  readonly #perToken = new Map<string, number>()
  /** Starts being written, by what they show (resourceVersion, since, filter, framing), for sharing. */
  readonly #starts = new Map<string, WatchStart>()
  readonly #unsubscribe: () => void
  readonly #timer: NodeJS.Timeout

  constructor(state: ControlState, options: WatchHubOptions) {
    this.#state = state
    this.#options = options
    this.#unsubscribe = state.subscribe((e, json) => this.#publish(e, json))
    this.#timer = setInterval(() => this.#publish({ type: 'BOOKMARK', resourceVersion: state.resourceVersion, object: null }), options.bookmarkInterval)
    this.#timer.unref()
  }

  get size(): number {
    return this.#watchers.size
  }

  /** Starts being written now (for tests: sharing shows as fewer starts than watchers). */
  get starts(): readonly WatchStart[] {
    return [...this.#starts.values()]
  }

  /**
   * Starts a watch (see the module contract); `token` names the credential it counts against.
   * With `since`, the caller has checked that the events after it are retained. The start is
   * taken synchronously, so no change can fall between it and the live stream.
   */
  open(res: ServerResponse, options: { sse: boolean; since?: number | undefined; filter: WatchFilter; token: string }): void {
    const { maxWatches, maxWatchesPerToken } = this.#options
    if (this.#watchers.size >= maxWatches) {
      throw new ControlError(ControlErrorCodes.QUOTA_EXCEEDED, `this endpoint has ${this.#watchers.size} watches open, its quota (maxWatches). Close watches you do not need, or raise the quota (startControl maxWatches, meshlet control --max-watches).`)
    }
    const mine = this.#perToken.get(options.token) ?? 0
    if (mine >= maxWatchesPerToken) {
      throw new ControlError(ControlErrorCodes.QUOTA_EXCEEDED, `the ${options.token} token has ${mine} watches open, its quota (maxWatchesPerToken). Close watches you do not need, or raise the quota (startControl maxWatchesPerToken, meshlet control --max-watches-per-token).`)
    }
    const start = this.#startFor(options)
    const w: Watcher = { res, sse: options.sse, filter: options.filter, token: options.token, start, pending: [], pendingBytes: 0, closed: false }
    res.writeHead(200, {
      'content-type': options.sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    })
    this.#watchers.add(w)
    this.#perToken.set(w.token, mine + 1)
    start.readers++
    res.on('close', () => this.#forget(w))
    void this.#writeStart(w, start)
  }

  /** Ends every watch (clients reconnect and resume) and stops following the state. */
  close(): void {
    clearInterval(this.#timer)
    this.#unsubscribe()
    for (const w of [...this.#watchers]) {
      this.#forget(w)
      w.res.end()
    }
  }

  #startFor(options: { sse: boolean; since?: number | undefined; filter: WatchFilter }): WatchStart {
    const rv = this.#state.resourceVersion
    const { kinds, namespace } = options.filter
    const key = `${rv}|${options.since ?? ''}|${kinds === undefined ? '*' : [...kinds].sort().join(',')}|${namespace ?? '*'}|${options.sse ? 'sse' : 'ndjson'}`
    let start = this.#starts.get(key)
    if (start !== undefined) return start
    let items: (WatchEvent | StoredObject)[]
    if (options.since !== undefined) {
      const events = this.#state.eventsSince(options.since)
      items = events === 'resync' ? [] : events.filter((e) => matches(e, options.filter))
    } else {
      items = []
      for (const o of this.#state.allResources()) if (objectMatches(o, options.filter)) items.push(o)
      for (const o of this.#state.instances()) if (objectMatches(o, options.filter)) items.push(o)
    }
    start = new WatchStart(rv, items, { key, sse: options.sse, cacheBytes: this.#options.startCacheBytes ?? 8 * 1024 * 1024 })
    this.#starts.set(key, start)
    return start
  }

  /** Writes the start page by page, waiting for the client to take each; then the BOOKMARK and what changed meanwhile. */
  async #writeStart(w: Watcher, start: WatchStart): Promise<void> {
    for (let k = 0; ; k++) {
      if (w.closed) return
      const page = start.page(k)
      if (page === undefined) break
      if (!w.res.write(page)) {
        if (!(await drained(w.res))) return
      } else if (k % YIELD_PAGES === YIELD_PAGES - 1) {
        // A fast reader never pushes back (loopback takes megabytes): yield, or one watch would hold the loop until it is done.
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    if (w.closed) return
    this.#release(start)
    w.start = undefined
    const bookmark: WatchEvent = { type: 'BOOKMARK', resourceVersion: start.resourceVersion, object: null }
    w.res.write(frame(bookmark, w.sse) + w.pending.join(''))
    w.pending = []
    w.pendingBytes = 0
    this.#checkBehind(w)
  }

  #publish(e: WatchEvent, json?: string): void {
    let ndjson: string | undefined
    let sse: string | undefined
    for (const w of this.#watchers) {
      if (!matches(e, w.filter)) continue
      // A start ends with its own BOOKMARK: periodic ones would only repeat it.
      if (w.start !== undefined && e.type === 'BOOKMARK') continue
      json ??= JSON.stringify(e)
      const text = w.sse ? (sse ??= frame(e, true, json)) : (ndjson ??= frame(e, false, json))
      if (w.start !== undefined) {
        // The same string for every watcher: queued changes cost their bytes once, not per watcher.
        w.pending.push(text)
        w.pendingBytes += text.length
      } else w.res.write(text)
      this.#checkBehind(w)
    }
  }

  /** Cuts off a watcher with more than maxBuffer bytes queued for it, so it resumes with since=. */
  #checkBehind(w: Watcher): void {
    const queued = w.pendingBytes + w.res.writableLength
    if (queued <= this.#options.maxBuffer || w.closed) return
    this.#options.log.warn(`a watcher (${w.res.req.socket.remoteAddress ?? 'unknown'}) fell ${queued} bytes behind; closing its watch so it resumes with since=`)
    this.#forget(w)
    w.res.destroy()
  }

  #forget(w: Watcher): void {
    if (w.closed) return
    w.closed = true
    w.pending = []
    this.#watchers.delete(w)
    const n = (this.#perToken.get(w.token) ?? 1) - 1
    if (n > 0) this.#perToken.set(w.token, n)
    else this.#perToken.delete(w.token)
    if (w.start !== undefined) this.#release(w.start)
    w.start = undefined
  }

  #release(start: WatchStart): void {
    if (--start.readers > 0) return
    if (this.#starts.get(start.key) === start) this.#starts.delete(start.key)
  }
}

/** Resolves true once `res` can take more, false if it closed first. */
function drained(res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain)
      res.off('close', onClose)
      resolve(ok)
    }
    const onDrain = () => done(true)
    const onClose = () => done(false)
    res.on('drain', onDrain)
    res.on('close', onClose)
  })
}

function matches(e: WatchEvent, f: WatchFilter): boolean {
  return e.object === null || objectMatches(e.object, f)
}

function objectMatches(o: StoredObject, f: WatchFilter): boolean {
  return (f.kinds === undefined || f.kinds.has(o.kind)) && (f.namespace === undefined || o.metadata.namespace === f.namespace)
}
