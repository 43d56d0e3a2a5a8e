/**
 * The control endpoint's state: resources, instance leases, the resourceVersion counter and the
 * retained event history, kept durable by a FileStore.
 *
 * Contract:
 * - Every change is one watch event with the next resourceVersion. Changes are group-committed:
 *   those arriving while a batch is being written go into the next batch (one write, one fsync).
 * - Readers (get, list, watch) see only durable state; a write's promise resolves, and its
 *   event reaches listeners, only after its batch is on disk. Writers check preconditions
 *   against the latest state including writes still being committed, so concurrent writers
 *   are serialized correctly.
 * - If a write to disk fails the store stops taking writes (MESHLET_ERR_STORE_FAILED) until
 *   restarted: what is on disk is then uncertain, and restart recovery decides.
 * - Quotas (ControlQuotas) are checked against the latest state, writes in flight included, so
 *   concurrent registrations cannot overshoot them. Deletes are never refused.
 * - Heartbeat reports live in memory only: the snapshot leaves them out (a restart renews every
 *   lease, and the next heartbeat brings a fresh report).
 */
import { randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { API_VERSION, ControlErrorCodes, INSTANCE_KIND, resourceKey, type Instance, type InstanceReport, type InstanceSpec, type Resource, type StoredObject, type WatchEvent } from '@meshlet/core'
import { ControlError } from '../errors.js'
import type { Logger } from '../logger.js'
import { FileStore, type StoreSnapshot } from '../store/file-store.js'
import { ControlQuotas, type ControlQuotaOptions } from './control-quotas.js'

export interface ControlStateOptions {
  log: Logger
  /** Events kept for `watch?since=`; older `since` values get a resync answer. Default 10,000. */
  historySize?: number
  /** Bytes of events (as stored) kept for `watch?since=`, whatever their number. Default 64 MiB. */
  historyBytes?: number
  quotas?: ControlQuotaOptions
  /** Compact (snapshot + empty log) once the log is this large. Default 4 MiB. */
  compactBytes?: number
  now?: () => number
}

export type PutResult = { object: Resource; result: 'created' | 'configured' | 'unchanged' }
type Pending = { event: WatchEvent; json: string; key: string; resolve: () => void; reject: (err: unknown) => void }

const instanceKey = (id: string): string => `${INSTANCE_KIND}/${id}`

export class ControlState {
  readonly #store: FileStore
  readonly #log: Logger
  readonly #now: () => number
  readonly #historySize: number
  readonly #compactBytes: number
  readonly #resources = new Map<string, Resource>()
  readonly #instances = new Map<string, Instance>()
  /** Writes not yet durable, by key: what the key will hold (null: deleted) and at which version. */
  readonly #overlay = new Map<string, { rv: number; object: StoredObject | null; durable: Promise<void> }>()
  readonly #listeners = new Set<(e: WatchEvent, json: string) => void>()
  readonly quotas: ControlQuotas
  readonly #historyMaxBytes: number
  #history: WatchEvent[] = []
  /** The stored size of each event in #history, and their sum. */
  #historySizes: number[] = []
  #historyBytes = 0
  /** Every event with a resourceVersion above this one is in #history. */
  #historyStart = 0
  #rv = 0
  #lastAssigned = 0
  #queue: Pending[] = []
  #flushing = false
  #failed: unknown
  #closed = false

  private constructor(store: FileStore, options: ControlStateOptions) {
    this.#store = store
    this.#log = options.log
    this.#now = options.now ?? Date.now
    this.#historySize = options.historySize ?? 10_000
    this.#compactBytes = options.compactBytes ?? 4 * 1024 * 1024
    this.#historyMaxBytes = options.historyBytes ?? 64 * 1024 * 1024
    this.quotas = new ControlQuotas(options.quotas)
  }

  static async open(dir: string, options: ControlStateOptions): Promise<ControlState> {
    const { store, recovered } = await FileStore.open(dir, options.log)
    const state = new ControlState(store, options)
    const snap = recovered.snapshot
    if (snap) {
      for (const r of snap.resources) state.#resources.set(resourceKey(r.kind, r.metadata.namespace, r.metadata.name), r)
      for (const i of snap.instances) state.#instances.set(i.metadata.name, i)
      state.#rv = snap.resourceVersion
      state.#historyStart = snap.resourceVersion
    }
    recovered.events.forEach((e, i) => state.#apply(e, recovered.sizes[i]!))
    state.#trimHistory()
    state.#lastAssigned = state.#rv
    // Leases restart on recovery: the endpoint was down, so no heartbeat could reach it.
    const now = state.#now()
    for (const [id, inst] of state.#instances) {
      const renewed = withLease(inst, now, inst.status.lastHeartbeat)
      state.#instances.set(id, renewed)
      state.quotas.count(instanceKey(id), undefined, renewed, storedSize(renewed))
    }
    for (const [key, r] of state.#resources) state.quotas.count(key, undefined, r, storedSize(r))
    return state
  }

  /** The resourceVersion of the latest durable change. */
  get resourceVersion(): number {
    return this.#rv
  }

  get(kind: string, namespace: string, name: string): Resource | undefined {
    return this.#resources.get(resourceKey(kind, namespace, name))
  }

  list(kind: string, namespace?: string): Resource[] {
    const out: Resource[] = []
    for (const r of this.#resources.values()) if (r.kind === kind && (namespace === undefined || r.metadata.namespace === namespace)) out.push(r)
    return out.sort(byNamespaceAndName)
  }

  allResources(): Resource[] {
    return [...this.#resources.values()].sort(byNamespaceAndName)
  }

  instance(id: string): Instance | undefined {
    return this.#instances.get(id)
  }

  instances(filter: { service?: string | undefined; namespace?: string | undefined } = {}): Instance[] {
    const out: Instance[] = []
    for (const i of this.#instances.values()) {
      if ((filter.service === undefined || i.spec.service === filter.service) && (filter.namespace === undefined || i.metadata.namespace === filter.namespace)) out.push(i)
    }
    return out.sort((a, b) => compare(a.spec.service, b.spec.service) || compare(a.metadata.creationTimestamp, b.metadata.creationTimestamp) || compare(a.metadata.name, b.metadata.name))
  }

  /**
   * Creates or replaces a validated resource. `precondition`: the write succeeds only if the
   * stored resourceVersion is this one (0: only if it does not exist). An identical spec and
   * labels change nothing and keep the version.
   */
  async put(resource: Resource, options: { precondition?: number | undefined; dryRun?: boolean } = {}): Promise<PutResult> {
    const { kind, metadata } = resource
    const key = resourceKey(kind, metadata.namespace, metadata.name)
    const current = this.#latest(key) as Resource | undefined
    checkPrecondition(current, options.precondition, `${kind} ${metadata.namespace}/${metadata.name}`)
    if (current && isDeepStrictEqual(current.spec, resource.spec) && isDeepStrictEqual(current.metadata.labels, metadata.labels)) {
      // "Unchanged" acknowledges the state: if it is still being written, answer once it is on disk.
      await this.#overlay.get(key)?.durable
      return { object: current, result: 'unchanged' }
    }
    const object: Resource = {
      apiVersion: API_VERSION,
      kind,
      metadata: {
        name: metadata.name,
        namespace: metadata.namespace,
        ...(metadata.labels ? { labels: metadata.labels } : {}),
        resourceVersion: options.dryRun ? (current?.metadata.resourceVersion ?? 0) : this.#lastAssigned + 1,
        creationTimestamp: current?.metadata.creationTimestamp ?? new Date(this.#now()).toISOString(),
      },
      spec: resource.spec,
    }
    const result = current ? 'configured' : 'created'
    // The rv below is the one the write gets: nothing runs between here and the commit.
    const event: WatchEvent = { type: current ? 'MODIFIED' : 'ADDED', resourceVersion: this.#lastAssigned + 1, object }
    const json = JSON.stringify(event)
    this.quotas.checkStore(key, Buffer.byteLength(json), `${kind} ${metadata.namespace}/${metadata.name}`)
    if (options.dryRun) return { object, result }
    this.#assertWritable()
    this.#lastAssigned++
    await this.#commit(key, event, json)
    return { object, result }
  }

  /** Deletes a resource; returns it as deleted (with the deletion's resourceVersion), or undefined if absent. */
  async delete(kind: string, namespace: string, name: string, precondition?: number): Promise<Resource | undefined> {
    const key = resourceKey(kind, namespace, name)
    const current = this.#latest(key) as Resource | undefined
    if (current === undefined) {
      if (precondition !== undefined && precondition !== 0) checkPrecondition(current, precondition, `${kind} ${namespace}/${name}`)
      return undefined
    }
    checkPrecondition(current, precondition, `${kind} ${namespace}/${name}`)
    this.#assertWritable()
    const rv = ++this.#lastAssigned
    const object: Resource = { ...current, metadata: { ...current.metadata, resourceVersion: rv } }
    await this.#commit(key, { type: 'DELETED', resourceVersion: rv, object })
    return object
  }

  /** Registers an instance with a new lease; resolves once durable. Refused over a quota (ControlQuotas). */
  async register(namespace: string, spec: InstanceSpec): Promise<Instance> {
    this.#assertWritable()
    this.quotas.checkRegistration(namespace, spec)
    const id = randomBytes(12).toString('hex')
    const now = this.#now()
    const rv = this.#lastAssigned + 1
    const instance = withLease(
      { apiVersion: API_VERSION, kind: INSTANCE_KIND, metadata: { name: id, namespace, resourceVersion: rv, creationTimestamp: new Date(now).toISOString() }, spec, status: { expiresAt: '', lastHeartbeat: '' } },
      now,
    )
    const event: WatchEvent = { type: 'ADDED', resourceVersion: rv, object: instance }
    const json = JSON.stringify(event)
    this.quotas.checkStore(instanceKey(id), Buffer.byteLength(json), `instance of ${namespace}/${spec.service}`)
    this.#lastAssigned++
    await this.#commit(instanceKey(id), event, json)
    return instance
  }

  /**
   * Renews a lease (in memory only: a restart renews every lease anyway, and writing heartbeats
   * to disk would cost an fsync each). Undefined if the lease is unknown or already expired.
   */
  heartbeat(id: string, report?: InstanceReport): Instance | undefined {
    const inst = this.#instances.get(id)
    const pending = this.#overlay.get(instanceKey(id))
    if (inst === undefined || (pending && pending.object === null) || Date.parse(inst.status.expiresAt) <= this.#now()) return undefined
    const renewed = withLease(inst, this.#now(), undefined, report ?? inst.status.report)
    this.#instances.set(id, renewed)
    return renewed
  }

  /** Removes an instance; returns it as removed, or undefined if unknown. */
  async deregister(id: string): Promise<Instance | undefined> {
    const key = instanceKey(id)
    const current = this.#latest(key) as Instance | undefined
    if (current === undefined) return undefined
    this.#assertWritable()
    const rv = ++this.#lastAssigned
    const object: Instance = { ...current, metadata: { ...current.metadata, resourceVersion: rv } }
    await this.#commit(key, { type: 'DELETED', resourceVersion: rv, object })
    return object
  }

  /** Removes every instance whose lease has run out; returns how many. */
  expireLeases(): number {
    if (this.#failed !== undefined || this.#closed) return 0
    const now = this.#now()
    let n = 0
    for (const inst of this.#instances.values()) {
      if (Date.parse(inst.status.expiresAt) > now || this.#overlay.has(instanceKey(inst.metadata.name))) continue
      const rv = ++this.#lastAssigned
      const object: Instance = { ...inst, metadata: { ...inst.metadata, resourceVersion: rv } }
      this.#commit(instanceKey(inst.metadata.name), { type: 'DELETED', resourceVersion: rv, object }).catch(() => {})
      this.#log.info(`lease expired: instance ${inst.metadata.name} of ${inst.metadata.namespace}/${inst.spec.service} at ${inst.spec.address}:${inst.spec.port} (no heartbeat for ${inst.spec.ttl}ms)`)
      n++
    }
    return n
  }

  /** Events after `since`, or 'resync' when some of them are no longer retained (or `since` is in the future). */
  eventsSince(since: number): WatchEvent[] | 'resync' {
    if (since < this.#historyStart || since > this.#rv) return 'resync'
    let lo = 0
    let hi = this.#history.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#history[mid]!.resourceVersion <= since) lo = mid + 1
      else hi = mid
    }
    return this.#history.slice(lo)
  }

  /** The oldest `since` a watch may resume from. */
  get historyStart(): number {
    return this.#historyStart
  }

  /** Calls `listener` with every durable change, in resourceVersion order. */
  subscribe(listener: (e: WatchEvent, json: string) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Waits for writes in flight, then closes the store. */
  async close(): Promise<void> {
    this.#closed = true
    while (this.#flushing || this.#queue.length > 0) await new Promise((r) => setImmediate(r))
    await this.#store.close()
  }

  #latest(key: string): StoredObject | undefined {
    const pending = this.#overlay.get(key)
    if (pending !== undefined) return pending.object ?? undefined
    if (key.startsWith(`${INSTANCE_KIND}/`)) return this.#instances.get(key.slice(INSTANCE_KIND.length + 1))
    return this.#resources.get(key)
  }

  #assertWritable(): void {
    if (this.#closed) throw new ControlError(ControlErrorCodes.STORE_FAILED, 'the control endpoint is shutting down; retry against it once it is back')
    if (this.#failed !== undefined) {
      throw new ControlError(ControlErrorCodes.STORE_FAILED, `the store could not write to disk (${String((this.#failed as Error)?.message ?? this.#failed)}) and takes no more writes; restart the control endpoint after fixing the disk`)
    }
  }

  /** Queues `event` (`json`: its JSON, when the caller has it) for the next batch; counts it against the quotas at once. */
  #commit(key: string, event: WatchEvent, json = JSON.stringify(event)): Promise<void> {
    const next = event.type === 'DELETED' || event.object === null ? undefined : event.object
    if (event.type !== 'BOOKMARK') this.quotas.count(key, this.#latest(key), next, Buffer.byteLength(json))
    const durable = new Promise<void>((resolve, reject) => {
      this.#queue.push({ event, json, key, resolve, reject })
      if (!this.#flushing) {
        this.#flushing = true
        queueMicrotask(() => void this.#flush())
      }
    })
    this.#overlay.set(key, { rv: event.resourceVersion, object: event.type === 'DELETED' ? null : event.object, durable: durable.catch(() => {}) })
    return durable
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue
      this.#queue = []
      try {
        await this.#store.append(batch.map((p) => p.json))
      } catch (err) {
        this.#failed = err
        this.#log.error(`writing to the store in ${this.#store.dir} failed: ${(err as Error).message}. No more writes are taken; restart the control endpoint once the disk is fixed.`)
        const e = new ControlError(ControlErrorCodes.STORE_FAILED, `the store could not write to disk (${(err as Error).message}); the change may or may not have been saved`, { cause: err })
        for (const p of [...batch, ...this.#queue]) p.reject(e)
        this.#queue = []
        break
      }
      for (const p of batch) {
        this.#apply(p.event, p.json.length)
        if (this.#overlay.get(p.key)?.rv === p.event.resourceVersion) this.#overlay.delete(p.key)
        for (const l of this.#listeners) {
          try {
            l(p.event, p.json)
          } catch (err) {
            this.#log.error(`a watch listener failed: ${(err as Error).message}`)
          }
        }
      }
      this.#trimHistory()
      for (const p of batch) p.resolve()
      // Compacting only once the log outgrows the snapshot keeps the total work linear in the bytes
      // written: with a fixed threshold, a large state was rewritten every few registrations.
      if (this.#store.walBytes > Math.max(this.#compactBytes, this.#store.snapshotBytes)) await this.#compact()
    }
    this.#flushing = false
  }

  async #compact(): Promise<void> {
    try {
      await this.#store.compact(this.snapshot())
    } catch (err) {
      // The old snapshot and log are still whole (the replacements are renamed in only when written).
      this.#log.warn(`compacting the store failed (${(err as Error).message}); the log keeps growing until the next try`)
    }
  }

  /** The durable state as one value (without heartbeat reports, which are not kept on disk). */
  snapshot(): StoreSnapshot {
    const instances = [...this.#instances.values()].map((i) => (i.status.report === undefined ? i : { ...i, status: { expiresAt: i.status.expiresAt, lastHeartbeat: i.status.lastHeartbeat } }))
    return { resourceVersion: this.#rv, resources: [...this.#resources.values()], instances }
  }

  /** Bytes of the retained history, as stored. */
  get historyBytes(): number {
    return this.#historyBytes
  }

  /** `bytes`: the event's stored size (its JSON's length). */
  #apply(e: WatchEvent, bytes: number): void {
    if (e.type === 'BOOKMARK') return
    const o = e.object
    if (o.kind === INSTANCE_KIND) {
      if (e.type === 'DELETED') this.#instances.delete(o.metadata.name)
      else this.#instances.set(o.metadata.name, o as Instance)
    } else {
      const key = resourceKey(o.kind, o.metadata.namespace, o.metadata.name)
      if (e.type === 'DELETED') this.#resources.delete(key)
      else this.#resources.set(key, o as Resource)
    }
    this.#rv = e.resourceVersion
    this.#history.push(e)
    this.#historySizes.push(bytes)
    this.#historyBytes += bytes
  }

  /** Drops the oldest events beyond historySize or historyBytes (in one slice: trimming one at a time would be quadratic). */
  #trimHistory(): void {
    let drop = Math.max(0, this.#history.length - this.#historySize)
    let bytes = this.#historyBytes
    for (let i = 0; i < drop; i++) bytes -= this.#historySizes[i]!
    while (bytes > this.#historyMaxBytes && drop < this.#history.length) bytes -= this.#historySizes[drop++]!
    if (drop === 0) return
    this.#historyStart = this.#history[drop - 1]!.resourceVersion
    this.#history = this.#history.slice(drop)
    this.#historySizes = this.#historySizes.slice(drop)
    this.#historyBytes = bytes
  }
}

function checkPrecondition(current: StoredObject | undefined, precondition: number | undefined, what: string): void {
  if (precondition === undefined) return
  const stored = current?.metadata.resourceVersion ?? 0
  if (stored === precondition) return
  const now = current === undefined ? 'it does not exist' : `it is at resourceVersion ${stored}`
  const wanted = precondition === 0 ? 'it not to exist' : `resourceVersion ${precondition}`
  throw new ControlError(ControlErrorCodes.CONFLICT, `${what} was changed by someone else: the write expected ${wanted}, but ${now}. Fetch it again, reapply your change and retry.`)
}

/** The size of the event that stores `o`, as the quotas count it (JSON.stringify length of an ADDED event). */
function storedSize(o: StoredObject): number {
  return Buffer.byteLength(JSON.stringify({ type: 'ADDED', resourceVersion: o.metadata.resourceVersion, object: o }))
}

function withLease(inst: Instance, now: number, lastHeartbeat?: string, report?: InstanceReport): Instance {
  const status = { expiresAt: new Date(now + inst.spec.ttl).toISOString(), lastHeartbeat: lastHeartbeat ?? new Date(now).toISOString(), ...(report ? { report } : {}) }
  return { ...inst, status }
}

function byNamespaceAndName(a: Resource, b: Resource): number {
  return compare(a.metadata.namespace, b.metadata.namespace) || compare(a.metadata.name, b.metadata.name) || compare(a.kind, b.kind)
}

/** Code-unit order: names are ASCII DNS labels, and this is several times faster than localeCompare. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
