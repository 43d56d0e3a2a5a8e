/**
 * Follows the control endpoint for one mesh: instances and ServicePolicy resources of its
 * namespace, through one watch that resumes from the last resourceVersion after a disconnect
 * (backoff with jitter) and relists when told to resync. The data plane never waits on it: the
 * last known state stays in force while the endpoint is away, and is kept on disk so that a process
 * started during an outage serves from it.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { EndpointAddress } from '../discovery/resolver.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import type { WatchEvent } from '../resources/control-api.js'
import { INSTANCE_KIND, type Instance } from '../resources/instance.js'
import type { Resource } from '../resources/resource.js'
import { channels, publish } from '../telemetry/diagnostics.js'
import { ControlRequestError, type ControlClient } from './control-client.js'

export interface ControlSyncHandlers {
  /** The full endpoint set of `service` changed. */
  endpoints(service: string, endpoints: EndpointAddress[]): void
  /** The Route resources for `service` changed (their specs in name order; none: no routes). */
  routes(service: string, specs: Record<string, unknown>[], source: string): void
  /** The policies of `service` changed: every ServicePolicy for it, in name order (none: back to options and defaults). */
  policy(service: string, specs: Record<string, unknown>[], source: string): void
}

interface Snapshot {
  format: 1
  savedAt: string
  controlUrl: string
  resourceVersion: number
  instances: Instance[]
  policies: Resource[]
  routes?: Resource[]
}

const POLICY_KIND = 'ServicePolicy'
const ROUTE_KIND = 'Route'
const BACKOFF_MIN = 100
const BACKOFF_MAX = 5000
const SNAPSHOT_DEBOUNCE = 500

export type SyncSource = 'control' | 'snapshot' | 'none'

export class ControlSync {
  readonly #client: ControlClient
  readonly #namespace: string
  readonly #handlers: ControlSyncHandlers
  readonly #snapshotFile: string | undefined
  readonly #snapshotMaxAge: number
  #instances = new Map<string, Instance>()
  /** The same instances indexed by service, so an event costs work for its own service only. */
  #byService = new Map<string, Map<string, Instance>>()
  /** Services whose endpoints changed since handlers were last told. */
  readonly #dirty = new Set<string>()
  #specsDirty = false
  #policies = new Map<string, Resource>()
  #routes = new Map<string, Resource>()
  #rv: number | undefined
  #abort = new AbortController()
  #closed = false
  #connected = false
  #lastError: string | undefined
  #snapshotTimer: NodeJS.Timeout | undefined
  #source: SyncSource = 'none'
  #resyncs = 0
  /** What each service was last told, to report only real changes. */
  readonly #published = new Map<string, string>()
  readonly #publishedPolicy = new Map<string, string>()
  readonly #publishedRoutes = new Map<string, string>()
  readonly #now: () => number
  readonly #random: () => number

  /** `now` dates snapshots and judges their age; `random` jitters the reconnect backoff (tests pass their own). */
  constructor(client: ControlClient, namespace: string, handlers: ControlSyncHandlers, options: { snapshotFile?: string | undefined; snapshotMaxAge: number; now?: () => number; random?: () => number }) {
    this.#client = client
    this.#namespace = namespace
    this.#handlers = handlers
    this.#snapshotFile = options.snapshotFile
    this.#snapshotMaxAge = options.snapshotMaxAge
    this.#now = options.now ?? Date.now
    this.#random = options.random ?? Math.random
  }

  /** Services with instances or a policy, as far as the control endpoint has told. */
  knows(service: string): boolean {
    return this.#published.has(service) || this.#publishedPolicy.has(service) || this.#publishedRoutes.has(service)
  }

  endpointsOf(service: string): EndpointAddress[] {
    return [...(this.#byService.get(service)?.values() ?? [])].map(endpointOf)
  }

  /** Every ServicePolicy for `service`, in name order (later ones override earlier ones field by field). */
  policyOf(service: string): { specs: Record<string, unknown>[]; source: string } | undefined {
    return specsFor(this.#policies, service)
  }

  /** Every Route for `service`, in name order (their rules are tried in that order). */
  routesOf(service: string): { specs: Record<string, unknown>[]; source: string } | undefined {
    return specsFor(this.#routes, service)
  }

  status(): { source: SyncSource; connected: boolean; resourceVersion: number | undefined; resyncs: number; lastError: string | undefined } {
    return { source: this.#source, connected: this.#connected, resourceVersion: this.#rv, resyncs: this.#resyncs, lastError: this.#lastError }
  }

  /**
   * Starts following. Resolves once there is a first state: the endpoint's full state, or, when the
   * first connection fails, the disk snapshot (if fresh enough) or nothing; following goes on.
   */
  start(): Promise<SyncSource> {
    return new Promise((resolve) => {
      let settled = false
      const settle = (source: SyncSource) => {
        if (settled) return
        settled = true
        resolve(source)
      }
      void this.#run(
        () => settle('control'),
        async () => {
          if (settled) return
          settle((await this.#loadSnapshot()) ? 'snapshot' : 'none')
        },
      )
    })
  }

  close(): void {
    this.#closed = true
    this.#abort.abort()
    clearTimeout(this.#snapshotTimer)
  }

  async #run(onFirstState: () => void, onFirstFailure: () => Promise<void>): Promise<void> {
    let backoff = BACKOFF_MIN
    let first = true
    while (!this.#closed) {
      // A watch without `since` starts with the full state: staged until its BOOKMARK, then live.
      let staged = this.#rv === undefined ? { instances: new Map<string, Instance>(), policies: new Map<string, Resource>(), routes: new Map<string, Resource>() } : undefined
      try {
        await this.#client.watch({ since: this.#rv, kinds: [INSTANCE_KIND, POLICY_KIND, ROUTE_KIND], namespace: this.#namespace, signal: this.#abort.signal }, (events) => {
          backoff = BACKOFF_MIN
          this.#connected = true
          this.#lastError = undefined
          if (!this.#apply(events, staged)) return
          staged = undefined
          if (first) {
            first = false
            onFirstState()
          }
        })
        this.#lastError = 'the watch ended (the endpoint restarted or closed it)'
      } catch (err) {
        if (this.#closed) return
        if (err instanceof ControlRequestError && err.code === ErrorCodes.RESYNC) {
          this.#rv = undefined // relist: the next watch starts from the full state
          this.#resyncs++
          backoff = BACKOFF_MIN
          continue
        }
        this.#lastError = (err as Error).message
        publish(channels.controlError, () => ({ error: err }))
        if (first) {
          first = false
          await onFirstFailure()
        }
      }
      this.#connected = false
      if (this.#closed) return
      await new Promise((r) => setTimeout(r, backoff * (0.5 + this.#random())).unref())
      backoff = Math.min(backoff * 2, BACKOFF_MAX)
    }
  }

  /**
   * Applies a batch. `staged` collects a full listing until its BOOKMARK, which then replaces the
   * state at once (no moment with half a registry). Returns true when a full state was installed.
   */
  #apply(events: WatchEvent[], staged: { instances: Map<string, Instance>; policies: Map<string, Resource>; routes: Map<string, Resource> } | undefined): boolean {
    // Returns true when this batch installed a staged full state.
    let installed = false
    for (const e of events) {
      if (e.type === 'BOOKMARK') {
        this.#rv = e.resourceVersion
        if (staged !== undefined && !installed) {
          this.#instances = staged.instances
          this.#policies = staged.policies
          this.#routes = staged.routes
          this.#reindex()
          installed = true
          this.#source = 'control'
        }
        continue
      }
      this.#rv = e.resourceVersion
      const o = e.object
      const key = `${o.metadata.namespace}/${o.metadata.name}`
      if (staged !== undefined && !installed) {
        const map = (o.kind === INSTANCE_KIND ? staged.instances : o.kind === ROUTE_KIND ? staged.routes : staged.policies) as Map<string, unknown>
        if (e.type === 'DELETED') map.delete(key)
        else map.set(key, o)
        continue
      }
      if (o.kind === INSTANCE_KIND) this.#applyInstance(key, e.type === 'DELETED' ? undefined : (o as Instance))
      else {
        const map = o.kind === ROUTE_KIND ? this.#routes : this.#policies
        if (e.type === 'DELETED') map.delete(key)
        else map.set(key, o as Resource)
        this.#specsDirty = true
      }
    }
    if (staged === undefined || installed) {
      this.#publish()
      this.#scheduleSnapshot()
    }
    return installed
  }

  /** Adds, replaces or (with undefined) removes one instance, marking the services it touched. */
  #applyInstance(key: string, next: Instance | undefined): void {
    const old = this.#instances.get(key)
    if (old !== undefined) {
      this.#byService.get(old.spec.service)?.delete(key)
      this.#dirty.add(old.spec.service)
    }
    if (next === undefined) {
      this.#instances.delete(key)
      return
    }
    this.#instances.set(key, next)
    let m = this.#byService.get(next.spec.service)
    if (m === undefined) this.#byService.set(next.spec.service, (m = new Map()))
    m.set(key, next)
    this.#dirty.add(next.spec.service)
  }

  /** Rebuilds the per-service index after the whole state was replaced; every service is re-told. */
  #reindex(): void {
    for (const service of this.#byService.keys()) this.#dirty.add(service)
    this.#byService = new Map()
    for (const [key, i] of this.#instances) {
      let m = this.#byService.get(i.spec.service)
      if (m === undefined) this.#byService.set(i.spec.service, (m = new Map()))
      m.set(key, i)
      this.#dirty.add(i.spec.service)
    }
    this.#specsDirty = true
  }

  /** Tells handlers what changed since they were last told: only the services an event touched. */
  #publish(): void {
    for (const service of this.#dirty) {
      const endpoints = this.endpointsOf(service)
      const sig = endpoints.map((e) => `${e.url}|${e.zone ?? ''}|${e.revision ?? ''}`).sort().join(',')
      if (this.#published.get(service) === sig) continue
      this.#published.set(service, sig)
      this.#handlers.endpoints(service, endpoints)
    }
    this.#dirty.clear()
    if (!this.#specsDirty) return
    this.#specsDirty = false
    publishSpecs(this.#policies, this.#publishedPolicy, (service, p) => this.#handlers.policy(service, p?.specs ?? [], p?.source ?? 'ServicePolicy deleted'))
    publishSpecs(this.#routes, this.#publishedRoutes, (service, r) => this.#handlers.routes(service, r?.specs ?? [], r?.source ?? 'Route deleted'))
  }

  #scheduleSnapshot(): void {
    if (this.#snapshotFile === undefined || this.#snapshotTimer !== undefined) return
    this.#snapshotTimer = setTimeout(() => {
      this.#snapshotTimer = undefined
      void this.#saveSnapshot()
    }, SNAPSHOT_DEBOUNCE)
    this.#snapshotTimer.unref()
  }

  /** Writes the last known good state: temp file + rename, so a crash leaves the old or the new one. */
  async #saveSnapshot(): Promise<void> {
    const file = this.#snapshotFile!
    const snapshot: Snapshot = {
      format: 1,
      savedAt: new Date(this.#now()).toISOString(),
      controlUrl: this.#client.url,
      resourceVersion: this.#rv ?? 0,
      instances: [...this.#instances.values()],
      policies: [...this.#policies.values()],
      routes: [...this.#routes.values()],
    }
    try {
      await mkdir(join(file, '..'), { recursive: true, mode: 0o700 })
      const tmp = `${file}.${process.pid}.tmp`
      await writeFile(tmp, JSON.stringify(snapshot), { mode: 0o600 })
      await rename(tmp, file)
    } catch (err) {
      this.#lastError = `could not save the snapshot ${file}: ${(err as Error).message}`
    }
  }

  async #loadSnapshot(): Promise<boolean> {
    const file = this.#snapshotFile
    if (file === undefined) return false
    let snapshot: Snapshot
    try {
      snapshot = JSON.parse(await readFile(file, 'utf8')) as Snapshot
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') this.#lastError = `snapshot ${file} is unreadable (${(err as Error).message}); starting without it`
      return false
    }
    const age = this.#now() - Date.parse(snapshot.savedAt)
    if (snapshot.format !== 1 || !Array.isArray(snapshot.instances) || !Array.isArray(snapshot.policies) || !(age >= 0)) {
      this.#lastError = `snapshot ${file} is not a meshlet snapshot; starting without it`
      return false
    }
    if (age > this.#snapshotMaxAge) {
      this.#lastError = `snapshot ${file} is ${Math.round(age / 1000)}s old, older than snapshotMaxAge; starting without it`
      return false
    }
    // The connection may have come up meanwhile: its state wins.
    if (this.#source === 'control') return true
    for (const i of snapshot.instances) this.#instances.set(`${i.metadata.namespace}/${i.metadata.name}`, i)
    for (const p of snapshot.policies) this.#policies.set(`${p.metadata.namespace}/${p.metadata.name}`, p)
    for (const r of snapshot.routes ?? []) this.#routes.set(`${r.metadata.namespace}/${r.metadata.name}`, r)
    this.#reindex()
    this.#source = 'snapshot'
    this.#publish()
    return true
  }
}

/** The specs of `resources` that apply to `service`, in name order, and where they came from. */
function specsFor(resources: Map<string, Resource>, service: string): { specs: Record<string, unknown>[]; source: string } | undefined {
  const mine = [...resources.values()].filter((r) => (r.spec as { service?: unknown }).service === service).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
  if (mine.length === 0) return undefined
  return { specs: mine.map((r) => r.spec as Record<string, unknown>), source: mine.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name} (resourceVersion ${r.metadata.resourceVersion})`).join(' + ') }
}

/** Tells `notify` about every service whose specs in `resources` changed since `published` recorded them. */
function publishSpecs(resources: Map<string, Resource>, published: Map<string, string>, notify: (service: string, specs: { specs: Record<string, unknown>[]; source: string } | undefined) => void): void {
  const services = new Set(published.keys())
  for (const r of resources.values()) services.add((r.spec as { service: string }).service)
  for (const service of services) {
    const found = specsFor(resources, service)
    const sig = found === undefined ? '' : JSON.stringify(found.specs)
    if (published.has(service) && published.get(service) === sig) continue
    if (found === undefined) published.delete(service)
    else published.set(service, sig)
    notify(service, found)
  }
}

function endpointOf(i: Instance): EndpointAddress {
  const protocol = i.spec.protocols.includes('https') && !i.spec.protocols.includes('http') ? 'https' : 'http'
  const host = i.spec.address
  return { url: `${protocol}://${host.includes(':') ? `[${host}]` : host}:${i.spec.port}`, protocol, host, port: i.spec.port, zone: i.spec.zone, revision: i.spec.revision }
}

/** The snapshot file of one mesh in `cacheDir`. */
export function snapshotFileFor(cacheDir: string, namespace: string, service: string): string {
  if (!/^[a-z0-9-]+$/.test(namespace) || !/^[a-z0-9-]+$/.test(service)) throw new MeshletError(ErrorCodes.CONFIG_INVALID, 'namespace and service must be DNS labels')
  return join(cacheDir, `meshlet-${namespace}-${service}.snapshot.json`)
}
