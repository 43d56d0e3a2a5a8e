/**
 * createMesh: validates options, builds one Destination per known service, and owns the process's
 * lifecycle (readiness, graceful drain, closing outbound pools) in the order that avoids the
 * sidecar ordering bugs: not ready → propagation delay → stop accepting → drain → close clients.
 */
import { dnsPort, policyFields, resolvePolicy, validateMeshOptions, type MeshOptionsInput, type ValidatedMeshOptions } from './config/mesh-options.js'
import * as s from './config/schema.js'
import { Destination, type DestinationSnapshot } from './destination.js'
import { DnsResolver } from './discovery/resolver-dns.js'
import { parseEndpointUrl, type EndpointAddress, type EndpointChange, type Resolver } from './discovery/resolver.js'
import { StaticResolver } from './discovery/resolver-static.js'
import { ConfigError, ErrorCodes, MeshletError, type ConfigIssue } from './errors.js'
import { ControlClient, ControlRequestError } from './control/control-client.js'
import { ControlSync, snapshotFileFor, type SyncSource } from './control/control-sync.js'
import { ControlResolver } from './discovery/resolver-control.js'
import type { InstanceRegistration } from './resources/instance.js'
import { checkRouteRules, routeSpecSchema, type RouteSpec } from './routing/route-spec.js'
import { RouteTable } from './routing/route-table.js'
import { AdmissionController, type AdmissionSnapshot } from './admission/admission-controller.js'
import { InboundGate } from './server/inbound-gate.js'
import { channels, publish } from './telemetry/diagnostics.js'
import { MeshMetrics } from './telemetry/metrics.js'

export type MeshOptions = MeshOptionsInput

/** A server the mesh drains on close: node:http, https and http2 servers all fit. */
export interface DrainableServer {
  close(callback?: (err?: Error) => void): unknown
  closeIdleConnections?(): void
  closeAllConnections?(): void
}

export interface MeshSnapshot {
  service: string
  namespace: string
  revision: string | undefined
  zone: string | undefined
  configVersion: number
  /** The last policy update that was refused, with why; the previous policy stayed in force. */
  lastRejectedConfig: RejectedConfig | null
  /** The control endpoint as this mesh follows it: null in static mode. */
  control: { url: string; lease: string | null; source: SyncSource; connected: boolean; resourceVersion: number | undefined; resyncs: number; lastError: string | undefined } | null
  state: 'serving' | 'not-ready' | 'draining' | 'closed'
  /** `admission`: limit, permits out, queue, shedding state and refusals by reason (drain and deadline ones too). */
  inbound: { inflight: number; utilization: number; admission: AdmissionSnapshot }
  destinations: Record<string, DestinationSnapshot>
}

export interface RejectedConfig {
  service: string
  source: string
  at: string
  issues: ConfigIssue[]
  message: string
}

const policyUpdateSchema = s.object(policyFields)

const DEFAULT_DRAIN_TIMEOUT = 30_000
const DEFAULT_SNAPSHOT_MAX_AGE = 24 * 3_600_000
const DEFAULT_LEASE_TTL = 15_000
/** With a registry, peers learn of a deregistration through their watch: well under a second. */
const DEFAULT_CONTROL_DRAIN_DELAY = 1000
const DEFAULT_DNS_REFRESH = 5000

export class Mesh implements AsyncDisposable {
  readonly service: string
  readonly namespace: string
  readonly revision: string | undefined
  readonly zone: string | undefined
  readonly metrics: MeshMetrics
  readonly inbound: InboundGate
  readonly #destinations = new Map<string, Destination>()
  readonly #servers = new Set<DrainableServer>()
  readonly #drainTimeout: number
  readonly #signals: readonly NodeJS.Signals[]
  readonly #onSignal: (signal: NodeJS.Signals) => void
  #signalsInstalled = false
  #closing: Promise<void> | undefined
  #closed = false
  #configVersion = 1
  #lastRejected: RejectedConfig | null = null
  readonly #options: ValidatedMeshOptions
  readonly #control: ControlClient | undefined
  readonly #sync: ControlSync | undefined
  readonly #controlResolvers = new Map<string, ControlResolver>()
  #lease: { id: string; timer: NodeJS.Timeout; registration: InstanceRegistration } | undefined
  #registering: Promise<string> | undefined

  /** Use createMesh(); the constructor does not wait for discovery. */
  constructor(options: MeshOptions) {
    const o = validateMeshOptions(options)
    this.#options = o
    this.service = o.service
    this.namespace = o.namespace ?? 'default'
    this.revision = o.revision
    this.zone = o.zone
    this.metrics = new MeshMetrics()
    this.inbound = new InboundGate(o.service, this.metrics, o.admission === undefined ? undefined : new AdmissionController(o.service, o.admission, this.metrics))
    this.#drainTimeout = o.drain?.timeout ?? DEFAULT_DRAIN_TIMEOUT
    this.#signals = o.shutdownSignals === false ? [] : (o.shutdownSignals ?? ['SIGTERM'])
    this.#onSignal = (signal) => {
      void this.close().finally(() => {
        this.#removeSignals()
        // Re-raise so the process ends as it would have without us, unless the app listens too.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      })
    }
    for (const [name, svc] of Object.entries(o.services ?? {})) {
      const policy = resolvePolicy(o.defaults, svc)
      const dest = new Destination(name, policy, resolverFor(name, svc.endpoints, o.dnsRefresh ?? DEFAULT_DNS_REFRESH), this.zone, this.metrics)
      if (svc.routes !== undefined) dest.updateRoutes(new RouteTable([{ service: name, rules: svc.routes }], `services.${name}.routes`))
      this.#destinations.set(name, dest)
    }
    if (o.control !== undefined) {
      const client = (this.#control = new ControlClient({ url: o.control, token: o.token }))
      this.#sync = new ControlSync(
        client,
        this.namespace,
        {
          endpoints: (service, endpoints) => {
            if (this.#destinations.has(service) && !this.#controlResolvers.has(service)) return // statically configured: options win
            this.#controlResolvers.get(service)?.update(endpoints)
          },
          routes: (service, specs, source) => {
            if (!this.#destinations.has(service)) return // applied when the destination is first used
            try {
              this.applyRoutes(service, specs, source)
            } catch {
              // Refused: the previous routes stay; inspect(), the metric and the channel say why.
            }
          },
          policy: (service, specs, source) => {
            if (!this.#destinations.has(service)) return // applied when the destination is first used
            try {
              this.applyPolicy(service, specs.map(withoutService), source)
            } catch {
              // Refused: the previous policy stays; inspect(), the metric and the channel say why.
            }
          },
        },
        { snapshotFile: o.cacheDir === undefined ? undefined : snapshotFileFor(o.cacheDir, this.namespace, this.service), snapshotMaxAge: o.snapshotMaxAge ?? DEFAULT_SNAPSHOT_MAX_AGE },
      )
    }
  }

  /**
   * The destination for a mesh service name, or undefined when the name is not a mesh service.
   * Services the control endpoint knows get a destination on first use.
   */
  destination(name: string): Destination | undefined {
    const d = this.#destinations.get(name)
    if (d !== undefined || this.#sync === undefined || !this.#sync.knows(name) || this.#closing) return d
    return this.#controlDestination(name)
  }

  /** Resolves once every destination has its first discovery snapshot, and the control state (or its snapshot) is in. */
  async ready(): Promise<void> {
    if (this.#sync !== undefined) await (this.#syncStarted ??= this.#sync.start())
    await Promise.all([...this.#destinations.values()].map((d) => d.ready))
  }

  #syncStarted: Promise<unknown> | undefined

  #controlDestination(name: string): Destination {
    const sync = this.#sync!
    const resolver = new ControlResolver(name, this.#control!.url, sync.endpointsOf(name))
    this.#controlResolvers.set(name, resolver)
    const dest = new Destination(name, resolvePolicy(this.#options.defaults), resolver, this.zone, this.metrics)
    this.#destinations.set(name, dest)
    const r = sync.routesOf(name)
    if (r !== undefined) {
      try {
        this.applyRoutes(name, r.specs, r.source)
      } catch {
        // Refused: no routes; inspect() says why.
      }
    }
    const p = sync.policyOf(name)
    if (p !== undefined) {
      try {
        this.applyPolicy(name, p.specs.map(withoutService), p.source)
      } catch {
        // Refused: defaults stay; inspect() says why.
      }
    }
    return dest
  }

  /** True when the mesh follows a control endpoint (and can register with it). */
  get controlled(): boolean {
    return this.#control !== undefined
  }

  /**
   * Registers after `server` starts listening, on the port it got; a failure is published on the
   * `meshlet:control:error` channel and shows in inspect(). For adapters that know their server.
   */
  registerOnListen(server: { once(event: 'listening', cb: () => void): unknown; address(): unknown }): void {
    if (this.#control === undefined) return
    server.once('listening', () => {
      const a = server.address()
      if (a === null || typeof a !== 'object') return
      this.register({ port: (a as { port: number }).port }).catch((error: unknown) => publish(channels.controlError, () => ({ service: this.service, error })))
    })
  }

  /**
   * Registers this process as an instance of its service with the control endpoint, once it listens,
   * and keeps the lease alive. `address` defaults to the address the endpoint sees the call from.
   */
  register(options: { port: number; address?: string; protocols?: ('http' | 'https' | 'h2c' | 'grpc')[]; metadata?: Record<string, string> }): Promise<string> {
    if (this.#control === undefined) return Promise.reject(new MeshletError(ErrorCodes.CONFIG_INVALID, `Mesh "${this.service}" has no control endpoint to register with; pass \`control\` to createMesh.`))
    if (this.#closing) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.service}" is closing; it does not register any more.`))
    if (this.#lease !== undefined) return Promise.resolve(this.#lease.id)
    // One registration at a time: an adapter's and the app's overlapping calls share one lease.
    this.#registering ??= this.#registerOnce(options).finally(() => (this.#registering = undefined))
    return this.#registering
  }

  async #registerOnce(options: { port: number; address?: string; protocols?: ('http' | 'https' | 'h2c' | 'grpc')[]; metadata?: Record<string, string> }): Promise<string> {
    const registration: InstanceRegistration = {
      service: this.service,
      namespace: this.namespace,
      port: options.port,
      ...(this.revision !== undefined ? { revision: this.revision } : {}),
      ...(this.zone !== undefined ? { zone: this.zone } : {}),
      ...(options.address !== undefined ? { address: options.address } : {}),
      protocols: options.protocols ?? ['http'],
      ...(options.metadata !== undefined ? { metadata: options.metadata } : {}),
      ttl: this.#options.leaseTtl ?? DEFAULT_LEASE_TTL,
    }
    const r = await this.#control!.register(registration)
    if (this.#closing) {
      // close() began while this was in flight: give the lease back at once.
      await this.#control!.deregister(r.id).catch(() => undefined)
      throw new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.service}" closed while registering; the lease was returned.`)
    }
    const interval = this.#options.heartbeatInterval ?? Math.max(50, Math.floor(r.ttl / 3))
    const timer = setInterval(() => void this.#heartbeat(), interval)
    timer.unref()
    this.#lease = { id: r.id, timer, registration }
    return r.id
  }

  /** Renews the lease; a lease the endpoint lost (expired during an outage, store restored) is registered anew. */
  async #heartbeat(): Promise<void> {
    const lease = this.#lease
    if (lease === undefined || this.#control === undefined) return
    try {
      await this.#control.heartbeat(lease.id, this.#report())
    } catch (err) {
      if (err instanceof ControlRequestError && err.code === 'MESHLET_ERR_LEASE_NOT_FOUND' && this.#lease === lease) {
        try {
          lease.id = (await this.#control.register(lease.registration)).id
        } catch {
          // The endpoint is away; the next beat tries again.
        }
      }
    }
  }

  /** What this instance tells the control endpoint about itself with each heartbeat (for `meshlet inspect`). */
  #report(): Record<string, unknown> {
    const destinations: Record<string, unknown> = {}
    for (const [name, d] of this.#destinations) {
      const snap = d.snapshot()
      destinations[name] = {
        breaker: snap.breaker?.state ?? 'off',
        endpoints: snap.endpoints.slice(0, 50).map((e) => ({ url: e.url, latencyMs: e.latencyMs, inflight: e.inflight, requests: e.requests, failures: e.failures, ejected: e.ejected })),
      }
    }
    return { state: this.#state(), inflight: this.inbound.inflight, utilization: Math.round(this.inbound.utilization * 100) / 100, admission: this.inbound.admissionSnapshot(), configVersion: this.#configVersion, destinations }
  }

  #state(): MeshSnapshot['state'] {
    return this.#closed ? 'closed' : !this.inbound.accepting ? 'draining' : !this.inbound.ready ? 'not-ready' : 'serving'
  }

  async #deregister(): Promise<void> {
    const lease = this.#lease
    if (lease === undefined) return
    this.#lease = undefined
    clearInterval(lease.timer)
    try {
      await this.#control!.deregister(lease.id)
    } catch {
      // Unreachable or already gone: the lease expires on its own.
    }
  }

  /**
   * Registers a server to drain on close() and, with `shutdownSignals`, on SIGTERM. Adapters call
   * this; apps with a bare node:http server may too.
   */
  attachServer(server: DrainableServer): void {
    if (this.#closed || this.#closing) throw new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.service}" is closing; attach servers before calling close().`)
    this.#servers.add(server)
    if (!this.#signalsInstalled) {
      this.#signalsInstalled = true
      for (const s of this.#signals) process.on(s, this.#onSignal)
    }
  }

  /**
   * Applies a policy update (the fields of a ServicePolicy spec) to one destination, live: new calls
   * use it at once. An invalid update is refused with MESHLET_ERR_CONFIG_INVALID, the previous
   * policy stays, and the refusal shows in inspect(), the `meshlet.config.rejected` metric and the
   * `meshlet:config:rejected` diagnostics channel. `source` names where it came from, for people.
   * Several updates (several ServicePolicy resources for one service, in name order) are layered
   * field by field, later over earlier, over the mesh options.
   */
  applyPolicy(service: string, update: unknown, source = 'applyPolicy()'): void {
    const dest = this.#destinations.get(service)
    if (dest === undefined) throw new MeshletError(ErrorCodes.UNKNOWN_SERVICE, `Mesh "${this.service}" has no destination "${service}" to apply a policy to; known: ${[...this.#destinations.keys()].join(', ') || '(none)'}.`)
    const issues: ConfigIssue[] = []
    const layers = (Array.isArray(update) ? update : [update]).map((u, i, all) => policyUpdateSchema.check(u ?? {}, all.length > 1 ? `[${i}]` : '', issues))
    if (issues.length > 0) throw this.#reject(service, source, issues, 'policy update')
    dest.updatePolicy(resolvePolicy(this.#options.defaults, this.#options.services?.[service], ...layers))
    this.#configVersion++
    publish(channels.configApplied, () => ({ mesh: this.service, service, source, version: this.#configVersion }))
  }

  /**
   * Replaces the routes of one destination with the rules of the given Route specs (several
   * Routes for one service: their rules in order). Refused like an invalid policy update.
   */
  applyRoutes(service: string, specs: readonly unknown[], source = 'applyRoutes()'): void {
    const dest = this.#destinations.get(service)
    if (dest === undefined) throw new MeshletError(ErrorCodes.UNKNOWN_SERVICE, `Mesh "${this.service}" has no destination "${service}" to route; known: ${[...this.#destinations.keys()].join(', ') || '(none)'}.`)
    const issues: ConfigIssue[] = []
    const checked = specs.map((spec, i) => {
      const at = specs.length > 1 ? `[${i}]` : ''
      const v = routeSpecSchema.check(spec, at, issues)
      if (v !== undefined) checkRouteRules(v.rules, `${at ? `${at}.` : ''}rules`, issues)
      return v
    })
    if (issues.length > 0) throw this.#reject(service, source, issues, 'routes')
    dest.updateRoutes(checked.length === 0 ? undefined : new RouteTable(checked as RouteSpec[], source))
    this.#configVersion++
    publish(channels.configApplied, () => ({ mesh: this.service, service, source, version: this.#configVersion }))
  }

  #reject(service: string, source: string, issues: ConfigIssue[], what: string): ConfigError {
    const error = new ConfigError(issues, `${what} for "${service}" from ${source}`)
    this.#lastRejected = { service, source, at: new Date().toISOString(), issues, message: error.message }
    this.metrics.configRejected.add(1, this.metrics.attributes(`cr:${service}`, () => ({ 'meshlet.destination': service })))
    publish(channels.configRejected, () => ({ ...this.#lastRejected }))
    return error
  }

  inspect(): MeshSnapshot {
    const destinations: Record<string, DestinationSnapshot> = {}
    for (const [name, d] of this.#destinations) destinations[name] = d.snapshot()
    return {
      service: this.service,
      namespace: this.namespace,
      revision: this.revision,
      zone: this.zone,
      configVersion: this.#configVersion,
      lastRejectedConfig: this.#lastRejected,
      control: this.#sync === undefined ? null : { url: this.#control!.url, lease: this.#lease?.id ?? null, ...this.#sync.status() },
      state: this.#state(),
      inbound: { inflight: this.inbound.inflight, utilization: this.inbound.utilization, admission: this.inbound.admissionSnapshot() },
      destinations,
    }
  }

  /** Graceful shutdown; safe to call more than once (later calls share the first's promise). */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #shutdown(): Promise<void> {
    const t0 = Date.now()
    publish(channels.drain, () => ({ service: this.service, phase: 'not-ready' }))
    this.inbound.markNotReady()
    // Deregister first, then give peers the drain delay to stop choosing us.
    if (this.#registering !== undefined) await this.#registering.catch(() => undefined)
    const registered = this.#lease !== undefined
    if (registered) await this.#deregister()
    const delay = this.#options.drain?.delay ?? (registered ? DEFAULT_CONTROL_DRAIN_DELAY : 0)
    if (delay > 0 && this.#servers.size > 0) await new Promise((r) => setTimeout(r, delay))
    publish(channels.drain, () => ({ service: this.service, phase: 'stop-accepting' }))
    this.inbound.stopAccepting()
    const serversClosed = [...this.#servers].map((s) => new Promise<void>((resolve) => void s.close(() => resolve())))
    for (const s of this.#servers) s.closeIdleConnections?.()
    const stillRunning = await this.inbound.waitIdle(this.#drainTimeout)
    publish(channels.drain, () => ({ service: this.service, phase: 'drained', stillRunning, ms: Date.now() - t0 }))
    for (const s of this.#servers) {
      if (stillRunning > 0) s.closeAllConnections?.()
      else s.closeIdleConnections?.()
    }
    await Promise.all(serversClosed)
    this.#sync?.close()
    await Promise.allSettled([...this.#destinations.values()].map((d) => d.close()))
    this.inbound.close()
    this.#removeSignals()
    this.#closed = true
    publish(channels.drain, () => ({ service: this.service, phase: 'closed', ms: Date.now() - t0 }))
  }

  #removeSignals(): void {
    for (const s of this.#signals) process.off(s, this.#onSignal)
  }
}

/** A ServicePolicy spec as a policy update: `service` says where it applies, it is not a policy field. */
function withoutService(spec: Record<string, unknown>): Record<string, unknown> {
  const { service: _service, ...update } = spec
  return update
}

function resolverFor(name: string, endpoints: readonly (string | { url: string; zone?: string; revision?: string })[], dnsRefresh: number): Resolver {
  const fixed: EndpointAddress[] = []
  const dns: Resolver[] = []
  for (const e of endpoints) {
    const url = typeof e === 'string' ? e : e.url
    const extra = typeof e === 'string' ? {} : { zone: e.zone, revision: e.revision }
    if (url.startsWith('dns://')) {
      const u = new URL(url.replace(/^dns:/, 'http:'))
      const port = dnsPort(url)
      if (port === undefined) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `services.${name}.endpoints: "${url}" needs a port (dns://name:port).`)
      dns.push(new DnsResolver({ host: u.hostname.replace(/^\[|\]$/g, ''), port, protocol: 'http', ...extra }, dnsRefresh))
    } else fixed.push(parseEndpointUrl(url, extra))
  }
  if (dns.length === 0) return new StaticResolver(fixed)
  if (dns.length === 1 && fixed.length === 0) return dns[0]!
  return new MergedResolver([...(fixed.length ? [new StaticResolver(fixed)] : []), ...dns])
}

/** Several resolvers as one; the first snapshot is reported once each has reported. */
class MergedResolver implements Resolver {
  constructor(readonly parts: readonly Resolver[]) {}
  start(listener: Parameters<Resolver['start']>[0]): void {
    let pending = this.parts.length
    // Changes held back until every part has reported, so the first snapshot is complete.
    const initial: EndpointChange[] = []
    for (const part of this.parts) {
      let first = true
      part.start({
        onChanges: (changes) => {
          if (pending === 0) {
            listener.onChanges(changes)
            return
          }
          for (const c of changes) initial.push(c)
          if (first) {
            first = false
            pending--
          }
          if (pending === 0) listener.onChanges(initial.splice(0))
        },
        onError: (e) => listener.onError(e),
      })
    }
  }
  close(): void {
    for (const p of this.parts) p.close()
  }
  describe(): string {
    return this.parts.map((p) => p.describe()).join(' + ')
  }
}

/**
 * Creates a mesh from options and waits for its first discovery snapshot. Throws
 * MESHLET_ERR_CONFIG_INVALID naming every invalid field.
 */
export async function createMesh(options: MeshOptions): Promise<Mesh> {
  const mesh = new Mesh(options)
  await mesh.ready()
  return mesh
}
