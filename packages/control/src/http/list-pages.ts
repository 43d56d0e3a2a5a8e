/**
 * Paged lists, as kube-apiserver pages them: `?limit=N&continue=TOKEN`, `metadata.continue` on
 * every page but the last.
 *
 * Contract:
 * - Every page of one list shows the store at its first page's resourceVersion. The first page
 *   takes a snapshot (references to the objects, in list order); later pages read it. A snapshot
 *   is kept `ttl` after its last page was read, and at most `maxSnapshots` at once (the oldest go
 *   first). A token whose snapshot is gone still works while the store is at its resourceVersion
 *   (the list is then taken again, the same); otherwise it is answered 410 MESHLET_ERR_RESYNC.
 * - A page holds at most `limit` items and at most `pageBytes` of them as JSON (one item always,
 *   however large), so no answer grows with the store. No `limit`: only the byte bound applies.
 * - The token is opaque to clients (base64url JSON); a damaged one, or one from another list
 *   (another kind, namespace or filter), is refused with 400.
 */
import { API_VERSION, ControlErrorCodes, MAX_LIST_LIMIT, type StoredObject } from '@meshlet/core'
import { badRequest, ControlError } from '../errors.js'

export interface ListPagesOptions {
  pageBytes: number
  /** How long a snapshot is kept after its last page was read. Default 60s. */
  ttl?: number
  /** Snapshots kept at most. Default 32: each holds references only, but pins objects changed since. */
  maxSnapshots?: number
  now?: () => number
}

interface ListSnapshot {
  id: string
  resourceVersion: number
  list: string
  items: readonly StoredObject[]
  expires: number
}

interface ContinueToken {
  /** The snapshot's id, the resourceVersion it shows, the list it belongs to, and the next item's index. */
  s: string
  rv: number
  l: string
  o: number
}

export class ListPages {
  readonly #o: Required<Omit<ListPagesOptions, 'now'>> & { now: () => number }
  /** By id, oldest use first. */
  readonly #snapshots = new Map<string, ListSnapshot>()
  #nextId = 0

  constructor(options: ListPagesOptions) {
    this.#o = { ttl: 60_000, maxSnapshots: 32, now: Date.now, ...options }
  }

  /**
   * The JSON text of one page of `list` (a name for the list and its filters: a token is only good
   * for the list it came from). `take` lists every item in order at `resourceVersion`, the store's now.
   */
  page(list: string, resourceVersion: number, take: () => readonly StoredObject[], query: URLSearchParams): string {
    const limit = limitParam(query)
    const token = query.get('continue')
    const now = this.#o.now()
    this.#expire(now)
    let snap: ListSnapshot
    let offset = 0
    if (token === null || token === '') {
      snap = { id: '', resourceVersion, list, items: take(), expires: 0 }
    } else {
      const t = decodeToken(token)
      if (t.l !== list) throw badRequest(`the continue token belongs to another list (${JSON.stringify(t.l.slice(0, 120))}); ask for the next page with the same path and filters as the first`)
      const kept = this.#snapshots.get(t.s)
      if (kept !== undefined && kept.resourceVersion === t.rv) snap = kept
      else if (t.rv === resourceVersion) snap = { id: t.s, resourceVersion, list, items: take(), expires: 0 }
      else {
        throw new ControlError(
          ControlErrorCodes.RESYNC,
          `the continue token has expired: the list it continues was taken at resourceVersion ${t.rv}, and this endpoint no longer keeps that snapshot (kept ${this.#o.ttl}ms after each page, ${this.#o.maxSnapshots} at most). List again from the first page.`,
        )
      }
      offset = t.o
      if (offset > snap.items.length) throw badRequest('the continue token points past the end of its list; list again from the first page')
    }
    const parts: string[] = []
    let bytes = 0
    let i = offset
    while (i < snap.items.length && (limit === undefined || parts.length < limit) && (parts.length === 0 || bytes < this.#o.pageBytes)) {
      const json = JSON.stringify(snap.items[i])
      // The byte bound is checked before an item is added, except for a page's first.
      if (parts.length > 0 && bytes + json.length > this.#o.pageBytes) break
      parts.push(json)
      bytes += json.length + 1
      i++
    }
    const metadata: Record<string, unknown> = { resourceVersion: snap.resourceVersion }
    if (i < snap.items.length) {
      if (snap.id === '') snap.id = `${now.toString(36)}.${(this.#nextId++).toString(36)}`
      this.#keep(snap, now)
      metadata.continue = encodeToken({ s: snap.id, rv: snap.resourceVersion, l: list, o: i })
      metadata.remainingItemCount = snap.items.length - i
    } else if (snap.id !== '') this.#snapshots.delete(snap.id)
    return `{"apiVersion":${JSON.stringify(API_VERSION)},"kind":"List","metadata":${JSON.stringify(metadata)},"items":[${parts.join(',')}]}`
  }

  /** Snapshots kept now (for tests). */
  get size(): number {
    return this.#snapshots.size
  }

  #keep(snap: ListSnapshot, now: number): void {
    snap.expires = now + this.#o.ttl
    this.#snapshots.delete(snap.id)
    this.#snapshots.set(snap.id, snap)
    for (const id of this.#snapshots.keys()) {
      if (this.#snapshots.size <= this.#o.maxSnapshots) break
      this.#snapshots.delete(id)
    }
  }

  #expire(now: number): void {
    // Oldest use first: the first one still live ends the sweep.
    for (const [id, s] of this.#snapshots) {
      if (s.expires > now) break
      this.#snapshots.delete(id)
    }
  }
}

function limitParam(query: URLSearchParams): number | undefined {
  const v = query.get('limit')
  if (v === null || v === '') return undefined
  if (!/^\d{1,6}$/.test(v) || Number(v) > MAX_LIST_LIMIT) throw badRequest(`limit=${JSON.stringify(v.slice(0, 40))} is not a page size: send an integer 1-${MAX_LIST_LIMIT} (0 or none: as many as fit a page)`)
  return Number(v) === 0 ? undefined : Number(v)
}

function encodeToken(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url')
}

function decodeToken(token: string): ContinueToken {
  const bad = () => badRequest('the continue token is not one this endpoint gave out (damaged or truncated?); pass metadata.continue of the previous page unchanged, or list again from the first page')
  if (token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad()
  let t: unknown
  try {
    t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    throw bad()
  }
  const c = t as Partial<ContinueToken> | null
  if (typeof c !== 'object' || c === null || typeof c.s !== 'string' || typeof c.l !== 'string' || !Number.isSafeInteger(c.rv) || !Number.isSafeInteger(c.o) || c.o! < 0 || c.rv! < 0) throw bad()
  return c as ContinueToken
}
