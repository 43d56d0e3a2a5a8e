/**
 * The HTTP client of the control endpoint's API (global fetch, no dependency), used by the mesh's
 * control sync and by the `meshlet` CLI. Every non-2xx answer becomes a `ControlRequestError`
 * carrying the endpoint's code and message.
 */
import type { HeartbeatResponse, ListResponse, RegisterResponse, WatchEvent } from '../resources/control-api.js'
import type { Instance, InstanceRegistration } from '../resources/instance.js'
import { fitReport, type InstanceReport } from '../resources/instance-report.js'
import type { Resource } from '../resources/resource.js'
import { ControlRequestError } from './control-request-error.js'
import { WatchEventReader } from './watch-event-reader.js'

export { ControlRequestError } from './control-request-error.js'

export interface ControlClientOptions {
  /** `http://127.0.0.1:7070` */
  url: string
  token?: string | undefined
  /** Per-request timeout (not for watches). Default 10s. */
  timeout?: number
}

/** One page of a list: at most `limit` items (the endpoint may send fewer); `continue` from the previous page's `metadata.continue`. */
export interface ListPageOptions {
  limit?: number | undefined
  continue?: string | undefined
}

/** Times a whole-list read starts over when its continue token expires mid-way (410) before giving up. */
const LIST_RESTARTS = 3

export class ControlClient {
  readonly url: string
  readonly #token: string | undefined
  readonly #timeout: number

  constructor(options: ControlClientOptions) {
    this.url = options.url.replace(/\/+$/, '')
    this.#token = options.token
    this.#timeout = options.timeout ?? 10_000
  }

  get(kind: string, namespace: string, name: string): Promise<Resource> {
    return this.#json('GET', `/v1/${seg(kind)}/${seg(namespace)}/${seg(name)}`)
  }

  /** Undefined when it does not exist. */
  async find(kind: string, namespace: string, name: string): Promise<Resource | undefined> {
    try {
      return await this.get(kind, namespace, name)
    } catch (err) {
      if (err instanceof ControlRequestError && err.code === 'MESHLET_ERR_NOT_FOUND') return undefined
      throw err
    }
  }

  /** The whole list, read page by page (one consistent snapshot: every page at the first page's resourceVersion). */
  list(kind: string, namespace?: string): Promise<ListResponse<Resource>> {
    return this.#all((page) => this.listPage(kind, namespace, page))
  }

  /** One page of `GET /v1/{kind}[/{namespace}]`. */
  listPage(kind: string, namespace: string | undefined, page: ListPageOptions = {}): Promise<ListResponse<Resource>> {
    return this.#json('GET', `${namespace === undefined ? `/v1/${seg(kind)}` : `/v1/${seg(kind)}/${seg(namespace)}`}${pageQuery(new URLSearchParams(), page)}`)
  }

  /** Creates or replaces; `result` says which (or `unchanged`). */
  async put(resource: Resource, options: { dryRun?: boolean; kind?: string } = {}): Promise<{ object: Resource; result: string }> {
    const { namespace = 'default', name } = resource.metadata
    const path = `/v1/${seg(options.kind ?? resource.kind)}/${seg(namespace)}/${seg(name)}${options.dryRun ? '?dryRun=true' : ''}`
    const res = await this.#request('PUT', path, resource)
    return { object: (await res.json()) as Resource, result: res.headers.get('meshlet-result') ?? 'configured' }
  }

  delete(kind: string, namespace: string, name: string, resourceVersion?: number): Promise<Resource> {
    return this.#json('DELETE', `/v1/${seg(kind)}/${seg(namespace)}/${seg(name)}${resourceVersion === undefined ? '' : `?resourceVersion=${resourceVersion}`}`)
  }

  /** Every instance (of a service, in a namespace), read page by page like `list`. */
  instances(filter: { service?: string | undefined; namespace?: string | undefined } = {}): Promise<ListResponse<Instance>> {
    return this.#all((page) => this.instancesPage(filter, page))
  }

  /** One page of `GET /v1/instances`. */
  instancesPage(filter: { service?: string | undefined; namespace?: string | undefined }, page: ListPageOptions = {}): Promise<ListResponse<Instance>> {
    const q = new URLSearchParams()
    if (filter.service !== undefined) q.set('service', filter.service)
    if (filter.namespace !== undefined) q.set('namespace', filter.namespace)
    return this.#json('GET', `/v1/instances${pageQuery(q, page)}`)
  }

  register(registration: InstanceRegistration): Promise<RegisterResponse> {
    return this.#json('POST', '/v1/instances', registration)
  }

  /** Renews a lease; a report over MAX_REPORT_BYTES is shortened first (`fitReport`), as the endpoint would. */
  heartbeat(id: string, report?: InstanceReport): Promise<HeartbeatResponse> {
    return this.#json('POST', `/v1/instances/${seg(id)}/heartbeat`, report === undefined ? undefined : { report: fitReport(report) })
  }

  deregister(id: string): Promise<Instance> {
    return this.#json('DELETE', `/v1/instances/${seg(id)}`)
  }

  /**
   * Follows `GET /v1/watch` (NDJSON) and calls `onEvents` with each batch of events read together,
   * until the stream ends (resolves) or fails (rejects). Without `since` the first batch(es) up to
   * the first BOOKMARK are the full current state. A 410 rejects with code MESHLET_ERR_RESYNC.
   */
  async watch(options: { since?: number | undefined; kinds?: string[]; namespace?: string; signal?: AbortSignal }, onEvents: (events: WatchEvent[]) => void): Promise<void> {
    const q = new URLSearchParams()
    if (options.since !== undefined) q.set('since', String(options.since))
    if (options.kinds) q.set('kind', options.kinds.join(','))
    if (options.namespace) q.set('namespace', options.namespace)
    const res = await this.#request('GET', `/v1/watch?${q}`, undefined, options.signal ?? null, 'application/x-ndjson')
    const reader = new WatchEventReader(this.url)
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const events = reader.push(chunk)
      if (events.length > 0) onEvents(events)
    }
  }

  /**
   * Reads every page and joins them, under the first page's resourceVersion. An expired continue
   * token (410) starts the list over, as client-go's pager does, at most LIST_RESTARTS times.
   */
  async #all<T>(page: (options: ListPageOptions) => Promise<ListResponse<T>>): Promise<ListResponse<T>> {
    for (let attempt = 0; ; attempt++) {
      const first = await page({})
      const items = first.items
      let next = first.metadata.continue
      try {
        while (next !== undefined) {
          const more = await page({ continue: next })
          for (const item of more.items) items.push(item)
          next = more.metadata.continue
        }
      } catch (err) {
        if (err instanceof ControlRequestError && err.code === 'MESHLET_ERR_RESYNC' && attempt < LIST_RESTARTS) continue
        throw err
      }
      return { apiVersion: first.apiVersion, kind: first.kind, metadata: { resourceVersion: first.metadata.resourceVersion }, items }
    }
  }

  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.#request(method, path, body)).json()) as T
  }

  async #request(method: string, path: string, body?: unknown, signal: AbortSignal | null = AbortSignal.timeout(this.#timeout), accept = 'application/json'): Promise<Response> {
    const headers: Record<string, string> = { accept }
    if (this.#token) headers.authorization = `Bearer ${this.#token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.#timeout}ms` : (cause?.code ?? cause?.message ?? (err as Error).message)
      throw new ControlRequestError(0, 'MESHLET_ERR_UNREACHABLE', `cannot reach the control endpoint at ${this.url} (${why}); check --control / MESHLET_CONTROL and that it is running`)
    }
    if (res.ok) return res
    const text = await res.text()
    let error: { code?: string; message?: string; issues?: { path: string; message: string }[] } | undefined
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error
    } catch {
      // not a meshlet answer (a proxy?): report it as it came
    }
    throw new ControlRequestError(res.status, error?.code ?? `HTTP_${res.status}`, error?.message ?? `${method} ${path} answered ${res.status}: ${text.slice(0, 200)}`, error?.issues)
  }
}

function pageQuery(q: URLSearchParams, page: ListPageOptions): string {
  if (page.limit !== undefined) q.set('limit', String(page.limit))
  if (page.continue !== undefined) q.set('continue', page.continue)
  return q.size > 0 ? `?${q}` : ''
}

function seg(s: string): string {
  return encodeURIComponent(s)
}
