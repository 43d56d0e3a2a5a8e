/**
 * Reads the control endpoint's watch stream (NDJSON: one event per `\n`-terminated line) from
 * chunks split anywhere, even inside a UTF-8 sequence. Contract: memory held is at most `maxLine`
 * bytes of an unfinished line (a longer line fails as soon as it passes the limit, not when it
 * ends); every event returned has the shape `WatchEvent` promises, so the sync never meets `null`
 * where an object should be; anything else fails with a ControlRequestError naming the endpoint.
 */
import type { WatchEvent } from '../resources/control-api.js'
import { ControlRequestError } from './control-request-error.js'

/** Longest NDJSON line accepted from a watch (a resource is at most 1 MiB on the server). */
export const MAX_WATCH_LINE = 2 * 1024 * 1024

const NEWLINE = 0x0a
const EVENT_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK'])

export class WatchEventReader {
  readonly #source: string
  readonly #maxLine: number
  /** The unfinished line's pieces; copies, never views (a view would pin its whole chunk). */
  #pending: Uint8Array[] = []
  #pendingBytes = 0
  readonly #decoder = new TextDecoder()

  /** `source` names the endpoint in errors. */
  constructor(source: string, maxLine = MAX_WATCH_LINE) {
    this.#source = source
    this.#maxLine = maxLine
  }

  /** Bytes held for the line not yet ended. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }

  /**
   * The events the lines completed by `chunk` carry, in order. Throws ControlRequestError on a line
   * over the limit or one that is not an event; the stream is unusable after that (drop it).
   */
  push(chunk: Uint8Array): WatchEvent[] {
    const events: WatchEvent[] = []
    let start = 0
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      // A view is enough here: the line is decoded before push returns.
      this.#hold(chunk.subarray(start, nl))
      const event = this.#parse(this.#takeLine())
      if (event !== undefined) events.push(event)
      start = nl + 1
    }
    if (start < chunk.length) this.#hold(new Uint8Array(chunk.subarray(start)))
    return events
  }

  #hold(piece: Uint8Array): void {
    if (piece.length === 0) return
    this.#pendingBytes += piece.length
    if (this.#pendingBytes > this.#maxLine) {
      this.#pending = []
      throw new ControlRequestError(0, 'MESHLET_ERR_BAD_REQUEST', `a watch event from ${this.#source} is over ${this.#maxLine} bytes; refusing it`)
    }
    this.#pending.push(piece)
  }

  #takeLine(): string {
    const pieces = this.#pending
    this.#pending = []
    this.#pendingBytes = 0
    if (pieces.length === 0) return ''
    return this.#decoder.decode(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces))
  }

  /** An event, or undefined for a blank line (keep-alives). */
  #parse(line: string): WatchEvent | undefined {
    if (line.trim().length === 0) return undefined
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      throw this.#malformed(`is not JSON: ${shown(line)}`)
    }
    const why = eventProblem(value)
    if (why !== undefined) throw this.#malformed(`${why}: ${shown(line)}`)
    return value as WatchEvent
  }

  #malformed(why: string): ControlRequestError {
    return new ControlRequestError(0, 'MESHLET_ERR_BAD_REQUEST', `a watch event from ${this.#source} ${why}; is the URL a meshlet control endpoint?`)
  }
}

/** What makes `value` no WatchEvent, or undefined when it is one. */
function eventProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not an object'
  const e = value as Record<string, unknown>
  if (typeof e.type !== 'string' || !EVENT_TYPES.has(e.type)) return 'has no known type (ADDED, MODIFIED, DELETED or BOOKMARK)'
  if (typeof e.resourceVersion !== 'number' || !Number.isSafeInteger(e.resourceVersion) || e.resourceVersion < 0) return 'has no resourceVersion (a non-negative integer)'
  if (e.type === 'BOOKMARK') return undefined
  const o = e.object as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null | undefined
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'has no object'
  if (typeof o.kind !== 'string') return 'has an object without a kind'
  const m = o.metadata
  if (typeof m !== 'object' || m === null || typeof m.name !== 'string' || typeof m.namespace !== 'string') return 'has an object without metadata.name and metadata.namespace'
  return undefined
}

function shown(line: string): string {
  return line.length > 80 ? `${JSON.stringify(line.slice(0, 80))}…` : JSON.stringify(line)
}
