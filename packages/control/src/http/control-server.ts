/**
 * `startControl`: the control endpoint's HTTP/JSON API over node:http.
 *
 *   GET    /healthz                               no token
 *   GET    /v1/schema                             JSON Schema of every kind, no token
 *   GET    /v1/{kind}[/{namespace}]               list (join or admin token)
 *   GET    /v1/{kind}/{namespace}/{name}          get
 *   PUT    /v1/{kind}/{namespace}/{name}          create or replace (admin); ?dryRun=true validates only
 *   DELETE /v1/{kind}/{namespace}/{name}          delete (admin); ?resourceVersion= precondition
 *   GET    /v1/watch?since=RV&kind=&namespace=    NDJSON, or SSE with Accept: text/event-stream
 *   POST   /v1/instances                          register (join)
 *   GET    /v1/instances[?service=&namespace=]    list; GET /v1/instances/{id}
 *   POST   /v1/instances/{id}/heartbeat           renew
 *   DELETE /v1/instances/{id}                     deregister
 *   /v1/ingress/…, /v1/status/…, /v1/triggers/{ns}/{name}/status   the broker (broker-routes.ts)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import {
  checkReport,
  ControlErrorCodes,
  DEFAULT_INSTANCE_TTL,
  DEFAULT_NAMESPACE,
  INSTANCE_KIND,
  instanceRegistrationSchema,
  isDnsLabel,
  LIST_PAGE_BYTES,
  type ConfigIssue,
  type InstanceReport,
  type ResourceKind,
  type ResourceRegistry,
} from '@meshlet/core'
import { BrokerService, createEmbeddedBackend, type BrokerBackend } from '@meshlet/events'
import { controlResourceRegistry } from '../resource-kinds.js'
import { ADMIN_TOKEN_FILE, JOIN_TOKEN_FILE, loadOrCreateToken, TokenCheck, type Role } from '../auth/tokens.js'
import { badRequest, ControlError, isControlError, notFound } from '../errors.js'
import { stderrLogger, type Logger } from '../logger.js'
import type { ControlQuotaOptions } from '../state/control-quotas.js'
import { ControlState } from '../state/control-state.js'
import { BrokerRoutes } from './broker-routes.js'
import { readJsonBody, sendError, sendJson } from './http-io.js'
import { ListPages } from './list-pages.js'
import { WatchHub } from './watch-hub.js'

/** Largest heartbeat body: a report is kept at MAX_REPORT_BYTES, and a mesh fits it before sending. */
const HEARTBEAT_BODY_LIMIT = 64 * 1024

export interface ControlOptions extends ControlQuotaOptions {
  /** Default 7070; 0 picks a free port (see `ControlServer.port`). */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** Where the store and the token files live. */
  dataDir: string
  /** The admin token; default: read from (or created in) `<dataDir>/admin.token`. */
  adminToken?: string
  /** The join token; default: read from (or created in) `<dataDir>/join.token`. */
  joinToken?: string
  log?: Logger
  /** Largest request body. Default 1 MiB. */
  bodyLimit?: number
  /** Changes retained for `watch?since=`. Default 10,000. */
  historySize?: number
  /** Interval of BOOKMARK events on every watch. Default 10s. */
  bookmarkInterval?: number
  /** How often expired leases are looked for. Default 250ms. */
  sweepInterval?: number
  /** Log size that triggers compaction. Default 4 MiB. */
  compactBytes?: number
  /** Bytes queued for a watcher that does not read before its watch is closed. Default 8 MiB. */
  maxWatchBuffer?: number
  /** Watches open at most, in all. Default 10,000 (`--max-watches`); one more is answered 429 MESHLET_ERR_QUOTA_EXCEEDED. */
  maxWatches?: number
  /**
   * Watches open at most with one token (the join token's are the meshes'). Default 9,000
   * (`--max-watches-per-token`): the other token keeps a tenth of maxWatches when one runs out.
   */
  maxWatchesPerToken?: number
  /** Bytes of events kept for `watch?since=`, whatever their number. Default 64 MiB. */
  historyBytes?: number
  /** Items of one list page take at most this many bytes as JSON. Default 4 MiB. */
  listPageBytes?: number
  /** The kinds served. Default: the built-in kinds of @meshlet/core and Trigger and Broker of @meshlet/events. */
  registry?: ResourceRegistry
  /**
   * The event broker (ingress, triggers' dispatcher). Default: the embedded durable log in
   * `<dataDir>/broker`. `backend`: another BrokerBackend (NATS JetStream: createJetStreamBackend),
   * which the endpoint then closes when it closes. `false`: no broker (ingress answers 404).
   */
  broker?: false | { backend?: BrokerBackend; maxInFlight?: number; maxEventSize?: number }
  /** Time a client has to send a request's headers. Default 10s (slowloris connections are cut after at most this + 1s). */
  headersTimeout?: number
  /** Time a client has to send a whole request, body included (watches are exempt). Default 30s. */
  requestTimeout?: number
  /** Open connections at most; more are refused at once. Default 10,000 (each mesh instance holds one watch). */
  maxConnections?: number
}

export interface ControlServer extends AsyncDisposable {
  /** `http://host:port` */
  readonly url: string
  readonly port: number
  readonly adminToken: string
  readonly joinToken: string
  readonly state: ControlState
  /** The event broker, unless started with `broker: false`. */
  readonly broker: BrokerService | undefined
  /** Ends watches, stops listening and closes the store (writes in flight finish first). */
  close(): Promise<void>
}

export async function startControl(options: ControlOptions): Promise<ControlServer> {
  const log = options.log ?? stderrLogger
  const dataDir = resolve(options.dataDir)
  const quotas: ControlQuotaOptions = { maxInstancesPerService: options.maxInstancesPerService, maxInstancesPerNamespace: options.maxInstancesPerNamespace, maxInstanceMetadataBytes: options.maxInstanceMetadataBytes, maxStoreBytes: options.maxStoreBytes }
  const state = await ControlState.open(dataDir, { log, historySize: options.historySize, historyBytes: options.historyBytes, compactBytes: options.compactBytes, quotas })
  let adminToken: string
  let joinToken: string
  try {
    adminToken = await loadOrCreateToken(dataDir, ADMIN_TOKEN_FILE, options.adminToken, 'admin token', log)
    joinToken = await loadOrCreateToken(dataDir, JOIN_TOKEN_FILE, options.joinToken, 'join token', log)
  } catch (err) {
    await state.close()
    throw err
  }
  const api = new ControlApi(state, {
    registry: options.registry ?? controlResourceRegistry(),
    tokens: new TokenCheck(adminToken, joinToken),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    lists: new ListPages({ pageBytes: options.listPageBytes ?? LIST_PAGE_BYTES }),
    log,
  })
  let backend: BrokerBackend | undefined
  try {
    if (options.broker !== false) backend = options.broker?.backend ?? (await createEmbeddedBackend({ dir: join(dataDir, 'broker') }))
  } catch (err) {
    await state.close()
    throw err
  }
  const maxWatches = options.maxWatches ?? 10_000
  const hub = new WatchHub(state, {
    bookmarkInterval: options.bookmarkInterval ?? 10_000,
    maxBuffer: options.maxWatchBuffer ?? 8 * 1024 * 1024,
    maxWatches,
    maxWatchesPerToken: options.maxWatchesPerToken ?? Math.max(1, Math.ceil(maxWatches * 0.9)),
    log,
  })
  api.hub = hub
  // Node checks these timeouts every connectionsCheckingInterval (30s by default, so a 10s
  // headersTimeout held for up to 40s); checking each second makes the documented limits hold.
  const requestTimeout = options.requestTimeout ?? 30_000
  const server = createServer(
    { requestTimeout, headersTimeout: Math.min(options.headersTimeout ?? 10_000, requestTimeout), connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 },
    (req, res) => void api.handle(req, res),
  )
  server.maxHeadersCount = 100
  server.maxConnections = options.maxConnections ?? 10_000
  const sweep = setInterval(() => state.expireLeases(), options.sweepInterval ?? 250)
  sweep.unref()
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail)
      server.listen(options.port ?? 7070, options.host ?? '127.0.0.1', () => {
        server.off('error', fail)
        ok()
      })
    })
  } catch (err) {
    clearInterval(sweep)
    hub.close()
    await backend?.close()
    await state.close()
    throw err
  }
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  const url = `http://${host}:${addr.port}`
  // Started once listening: its meshes follow this endpoint like any instance does.
  let broker: BrokerService | undefined
  if (backend !== undefined) {
    const o = options.broker === false ? {} : (options.broker ?? {})
    broker = new BrokerService({ backend, state, control: { url, token: joinToken }, log, ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}), ...(o.maxEventSize !== undefined ? { maxEventSize: o.maxEventSize } : {}) })
    api.broker = new BrokerRoutes({ broker, authorize: (req, role) => api.authorize(req, role), log })
    await broker.start()
  }
  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      clearInterval(sweep)
      // Triggers stop first (deliveries in flight stay unacked), so the broker's meshes end their watches.
      await broker?.close()
      hub.close()
      await new Promise<void>((ok) => {
        server.close(() => ok())
        server.closeIdleConnections()
        // Requests still running get a moment to finish; then their connections are cut.
        setTimeout(() => server.closeAllConnections(), 2000).unref()
      })
      await backend?.close()
      await state.close()
    })())
  return { url, port: addr.port, adminToken, joinToken, state, broker, close, [Symbol.asyncDispose]: close }
}

interface ApiOptions {
  registry: ResourceRegistry
  tokens: TokenCheck
  bodyLimit: number
  lists: ListPages
  log: Logger
}

class ControlApi {
  hub: WatchHub | undefined
  /** Set once the broker runs; undefined before (and with `broker: false`). */
  broker: BrokerRoutes | undefined
  readonly #state: ControlState
  readonly #o: ApiOptions

  constructor(state: ControlState, options: ApiOptions) {
    this.#state = state
    this.#o = options
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#route(req, res)
    } catch (err) {
      if (isControlError(err)) return sendError(res, err)
      // The client went away mid-request (499): nothing failed here, and nobody is left to answer.
      if (req.destroyed || (err as NodeJS.ErrnoException)?.code === 'ECONNRESET' || (err as NodeJS.ErrnoException)?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
        this.#o.log.debug?.(`499 ${req.method} ${req.url?.slice(0, 200)}: the client disconnected before the request was complete`)
        return void res.destroy()
      }
      this.#o.log.error(`${req.method} ${req.url?.slice(0, 200)} failed: ${(err as Error)?.stack ?? String(err)}`)
      sendError(res, new ControlError(ControlErrorCodes.INTERNAL, `the control endpoint failed to handle this request (${(err as Error)?.message ?? String(err)}); its log has the details`))
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/'
    const q = raw.indexOf('?')
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1))
    const segments = pathSegments(q < 0 ? raw : raw.slice(0, q))
    const method = req.method ?? 'GET'

    if (segments.length === 1 && segments[0] === 'healthz') return this.#only(method, ['GET', 'HEAD'], () => sendJson(res, 200, { status: 'ok', resourceVersion: this.#state.resourceVersion }))
    if (segments[0] !== 'v1' || segments.length < 2) throw notFound(`no such endpoint: ${method} ${raw.slice(0, 200)}; the API lives under /v1 (for example GET /v1/servicepolicies)`)
    const [, first, ...rest] = segments as [string, string, ...string[]]

    if (first === 'schema' && rest.length === 0) return this.#only(method, ['GET'], () => sendJson(res, 200, this.#o.registry.jsonSchema()))
    if (first === 'watch' && rest.length === 0) return this.#only(method, ['GET'], () => this.#watch(req, res, query))
    if (first === 'instances') return this.#instances(req, res, method, rest, query)
    if (this.broker?.owns([first, ...rest])) return this.broker.handle(req, res, method, [first, ...rest])

    const kind = this.#o.registry.lookup(first)
    if (kind === undefined) {
      throw new ControlError(ControlErrorCodes.UNKNOWN_KIND, `unknown kind ${JSON.stringify(first.slice(0, 60))}; this endpoint serves ${this.#o.registry.kinds().map((k) => k.plural).join(', ')} (and instances)`)
    }
    if (rest.length > 2) throw notFound(`no such endpoint: ${raw.slice(0, 200)}; use /v1/${kind.plural}/{namespace}/{name}`)
    const [namespace, name] = rest
    if (namespace !== undefined) checkName(namespace, 'namespace')
    if (name !== undefined) checkName(name, 'name')
    if (name === undefined) {
      return this.#only(method, ['GET'], () => {
        this.authorize(req, 'join')
        const list = `${kind.plural}/${namespace ?? ''}`
        const take = () => (namespace === undefined ? this.#state.list(kind.kind) : this.#state.list(kind.kind, namespace))
        sendListPage(res, this.#o.lists.page(list, this.#state.resourceVersion, take, query))
      })
    }
    const ns = namespace!
    switch (method) {
      case 'GET': {
        this.authorize(req, 'join')
        const r = this.#state.get(kind.kind, ns, name)
        if (r === undefined) throw notFound(`${kind.kind} ${ns}/${name} does not exist`)
        return sendJson(res, 200, r)
      }
      case 'PUT':
        return this.#put(req, res, kind, ns, name, query)
      case 'DELETE': {
        this.authorize(req, 'admin')
        const deleted = await this.#state.delete(kind.kind, ns, name, preconditionParam(query))
        if (deleted === undefined) throw notFound(`${kind.kind} ${ns}/${name} does not exist (already deleted?)`)
        return sendJson(res, 200, deleted)
      }
      default:
        throw methodNotAllowed(method, ['GET', 'PUT', 'DELETE'])
    }
  }

  async #put(req: IncomingMessage, res: ServerResponse, kind: ResourceKind, namespace: string, name: string, query: URLSearchParams): Promise<void> {
    this.authorize(req, 'admin')
    const body = await readJsonBody(req, this.#o.bodyLimit)
    if (body === undefined) throw badRequest(`the body is empty; send the ${kind.kind} as JSON`)
    // Namespace and name come from the URL when the body leaves them out.
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const b = body as { kind?: unknown; metadata?: unknown }
      if (typeof b.metadata === 'object' && b.metadata !== null && !Array.isArray(b.metadata)) {
        const m = b.metadata as Record<string, unknown>
        m.namespace ??= namespace
      }
    }
    const issues: ConfigIssue[] = []
    const resource = this.#o.registry.check(body, issues)
    if (resource !== undefined) {
      if (resource.kind !== kind.kind) issues.push({ path: 'kind', message: `is ${JSON.stringify(resource.kind)} but the URL is for ${kind.kind}` })
      if (resource.metadata.name !== name) issues.push({ path: 'metadata.name', message: `is ${JSON.stringify(resource.metadata.name)} but the URL names ${JSON.stringify(name)}` })
      if (resource.metadata.namespace !== namespace) issues.push({ path: 'metadata.namespace', message: `is ${JSON.stringify(resource.metadata.namespace)} but the URL names ${JSON.stringify(namespace)}` })
    }
    if (resource === undefined || issues.length > 0) throw invalid(issues, `${kind.kind} ${namespace}/${name}`)
    const dryRun = query.get('dryRun')
    const { object, result } = await this.#state.put(resource, { precondition: resource.metadata.resourceVersion, dryRun: dryRun === 'true' || dryRun === '1' || dryRun === 'All' })
    sendJson(res, result === 'created' ? 201 : 200, object, { 'meshlet-result': result })
  }

  #watch(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    this.authorize(req, 'join')
    const sse = /text\/event-stream/i.test(req.headers.accept ?? '')
    const sinceText = query.get('since') ?? (sse ? (req.headers['last-event-id'] as string | undefined) : undefined) ?? undefined
    let since: number | undefined
    if (sinceText !== undefined && sinceText !== '') {
      if (!/^\d{1,15}$/.test(sinceText)) throw badRequest(`since=${JSON.stringify(sinceText.slice(0, 40))} is not a resourceVersion (a non-negative integer)`)
      since = Number(sinceText)
      if (this.#state.eventsSince(since) === 'resync') {
        throw new ControlError(
          ControlErrorCodes.RESYNC,
          since > this.#state.resourceVersion
            ? `since=${since} is ahead of this endpoint (resourceVersion ${this.#state.resourceVersion}): its store was replaced or restored from a backup. Resync: watch without since (or list) and continue from the resourceVersion you get.`
            : `since=${since} is older than the history this endpoint keeps (changes after ${this.#state.historyStart}). Resync: watch without since (or list) and continue from the resourceVersion you get.`,
        )
      }
    }
    let kinds: Set<string> | undefined
    const kindParam = query.get('kind')
    if (kindParam) {
      kinds = new Set()
      for (const k of kindParam.split(',')) {
        if (/^instances?$/i.test(k)) kinds.add(INSTANCE_KIND)
        else kinds.add(this.#o.registry.lookup(k)?.kind ?? unknownKind(k, this.#o.registry))
      }
    }
    const namespace = query.get('namespace') ?? undefined
    if (namespace !== undefined) checkName(namespace, 'namespace')
    req.socket.setTimeout(0)
    req.socket.setNoDelay(true)
    this.hub!.open(res, { sse, since, filter: { kinds, namespace }, token: this.#o.tokens.roleOf(req.headers.authorization) ?? 'join' })
  }

  async #instances(req: IncomingMessage, res: ServerResponse, method: string, rest: string[], query: URLSearchParams): Promise<void> {
    this.authorize(req, 'join')
    if (rest.length === 0) {
      if (method === 'GET') {
        const service = query.get('service') ?? undefined
        const namespace = query.get('namespace') ?? undefined
        if (service !== undefined) checkName(service, 'service')
        if (namespace !== undefined) checkName(namespace, 'namespace')
        const take = () => this.#state.instances({ service, namespace })
        return sendListPage(res, this.#o.lists.page(`instances/${namespace ?? ''}/${service ?? ''}`, this.#state.resourceVersion, take, query))
      }
      if (method !== 'POST') throw methodNotAllowed(method, ['GET', 'POST'])
      const body = await readJsonBody(req, this.#o.bodyLimit)
      const issues: ConfigIssue[] = []
      const reg = instanceRegistrationSchema.check(body ?? {}, '', issues)
      if (reg === undefined || issues.length > 0) throw invalid(issues, 'instance registration')
      const address = reg.address ?? (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '')
      const inst = await this.#state.register(reg.namespace ?? DEFAULT_NAMESPACE, {
        service: reg.service,
        ...(reg.revision !== undefined ? { revision: reg.revision } : {}),
        ...(reg.zone !== undefined ? { zone: reg.zone } : {}),
        address,
        port: reg.port,
        protocols: reg.protocols ?? ['http'],
        metadata: reg.metadata ?? {},
        ttl: reg.ttl ?? DEFAULT_INSTANCE_TTL,
        ...(reg.triggers !== undefined && reg.triggers.length > 0 ? { triggers: reg.triggers } : {}),
      })
      return sendJson(res, 201, { id: inst.metadata.name, ttl: inst.spec.ttl, expiresAt: inst.status.expiresAt, instance: inst })
    }
    const id = rest[0]!
    if (!/^[a-f0-9]{24}$/.test(id)) throw leaseNotFound(id)
    if (rest.length === 2 && rest[1] === 'heartbeat') {
      if (method !== 'POST' && method !== 'PUT') throw methodNotAllowed(method, ['POST'])
      const body = await readJsonBody(req, Math.min(this.#o.bodyLimit, HEARTBEAT_BODY_LIMIT))
      let report: InstanceReport | undefined
      if (body !== undefined) {
        const b = body as { report?: unknown }
        if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).some((k) => k !== 'report') || (b.report !== undefined && (typeof b.report !== 'object' || b.report === null || Array.isArray(b.report)))) {
          throw invalid([{ path: 'report', message: 'a heartbeat body is empty or { "report": { ... } }' }], 'heartbeat')
        }
        // Typed, unknown fields dropped, fitted to MAX_REPORT_BYTES (instance-report.ts); a known field of the wrong type is refused.
        const issues: ConfigIssue[] = []
        if (b.report !== undefined) report = checkReport(b.report, issues)
        if (issues.length > 0) throw invalid(issues, 'heartbeat report')
      }
      const inst = this.#state.heartbeat(id, report)
      if (inst === undefined) throw leaseNotFound(id)
      return sendJson(res, 200, { id, ttl: inst.spec.ttl, expiresAt: inst.status.expiresAt })
    }
    if (rest.length !== 1) throw notFound(`no such endpoint: ${req.url?.slice(0, 200)}`)
    if (method === 'GET') {
      const inst = this.#state.instance(id)
      if (inst === undefined) throw leaseNotFound(id)
      return sendJson(res, 200, inst)
    }
    if (method !== 'DELETE') throw methodNotAllowed(method, ['GET', 'DELETE'])
    const gone = await this.#state.deregister(id)
    if (gone === undefined) throw leaseNotFound(id)
    return sendJson(res, 200, gone)
  }

  authorize(req: IncomingMessage, needed: Role): void {
    const header = req.headers.authorization
    const role = this.#o.tokens.roleOf(header)
    if (role === undefined) {
      throw new ControlError(
        ControlErrorCodes.UNAUTHENTICATED,
        header === undefined
          ? `this call needs the ${needed} token: send "Authorization: Bearer <token>" (the meshlet CLI reads it from --token or MESHLET_TOKEN)`
          : `the token in the Authorization header is not valid for this control endpoint (it is neither its admin nor its join token)`,
      )
    }
    if (needed === 'admin' && role !== 'admin') throw new ControlError(ControlErrorCodes.FORBIDDEN, 'this call changes configuration and needs the admin token; the join token only registers instances and reads')
  }

  #only(method: string, allowed: string[], handler: () => void): void {
    if (!allowed.includes(method)) throw methodNotAllowed(method, allowed)
    handler()
  }
}

function pathSegments(path: string): string[] {
  const out: string[] = []
  for (const s of path.split('/')) {
    if (s === '') continue
    try {
      out.push(decodeURIComponent(s))
    } catch {
      throw badRequest(`the path ${JSON.stringify(path.slice(0, 200))} is not valid percent-encoding`)
    }
  }
  return out
}

function checkName(value: string, what: string): void {
  if (!isDnsLabel(value)) throw badRequest(`the ${what} ${JSON.stringify(value.slice(0, 80))} is not a DNS label (lowercase letters, digits and "-", at most 63 characters, starting and ending with a letter or digit)`)
}

function preconditionParam(query: URLSearchParams): number | undefined {
  const v = query.get('resourceVersion')
  if (v === null || v === '') return undefined
  if (!/^\d{1,15}$/.test(v)) throw badRequest(`resourceVersion=${JSON.stringify(v.slice(0, 40))} is not a resourceVersion (a non-negative integer)`)
  return Number(v)
}

function invalid(issues: readonly ConfigIssue[], what: string): ControlError {
  const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n')
  return new ControlError(ControlErrorCodes.CONFIG_INVALID, `invalid ${what} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines}`, { issues })
}

function unknownKind(name: string, registry: ResourceRegistry): never {
  throw new ControlError(ControlErrorCodes.UNKNOWN_KIND, `unknown kind ${JSON.stringify(name.slice(0, 60))}; known: ${registry.kinds().map((k) => k.kind).join(', ')}, Instance`)
}

function methodNotAllowed(method: string, allowed: string[]): ControlError {
  return new ControlError(ControlErrorCodes.METHOD_NOT_ALLOWED, `${method.slice(0, 20)} is not allowed here; use ${allowed.join(', ')}`)
}

function leaseNotFound(id: string): ControlError {
  return new ControlError(ControlErrorCodes.LEASE_NOT_FOUND, `no instance lease ${JSON.stringify(id.slice(0, 40))}: it expired or was deregistered; register again`)
}

/** A list page's JSON text, from ListPages. */
function sendListPage(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
