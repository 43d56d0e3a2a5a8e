/**
 * The HTTP client of the control endpoint's API (global fetch, no dependency), used by the mesh's
 * control sync and by the `meshlet` CLI. Every non-2xx answer becomes a `ControlRequestError`
 * carrying the endpoint's code and message.
 */
import type { HeartbeatResponse, ListResponse, RegisterResponse, WatchEvent } from '../resources/control-api.js'
import type { Instance, InstanceRegistration } from '../resources/instance.js'
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

  list(kind: string, namespace?: string): Promise<ListResponse<Resource>> {
    return this.#json('GET', namespace === undefined ? `/v1/${seg(kind)}` : `/v1/${seg(kind)}/${seg(namespace)}`)
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

  instances(filter: { service?: string | undefined; namespace?: string | undefined } = {}): Promise<ListResponse<Instance>> {
    const q = new URLSearchParams()
    if (filter.service !== undefined) q.set('service', filter.service)
    if (filter.namespace !== undefined) q.set('namespace', filter.namespace)
    return this.#json('GET', `/v1/instances${q.size > 0 ? `?${q}` : ''}`)
  }

  register(registration: InstanceRegistration): Promise<RegisterResponse> {
    return this.#json('POST', '/v1/instances', registration)
  }

  heartbeat(id: string, report?: Record<string, unknown>): Promise<HeartbeatResponse> {
    return this.#json('POST', `/v1/instances/${seg(id)}/heartbeat`, report === undefined ? undefined : { report })
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

function seg(s: string): string {
  return encodeURIComponent(s)
}
