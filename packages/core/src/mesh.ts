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
  state: 'serving' | 'not-ready' | 'draining' | 'closed'
  inbound: { inflight: number; utilization: number }
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
  readonly #drainDelay: number
  readonly #drainTimeout: number
  readonly #signals: readonly NodeJS.Signals[]
  readonly #onSignal: (signal: NodeJS.Signals) => void
  #signalsInstalled = false
  #closing: Promise<void> | undefined
  #closed = false
  #configVersion = 1
  #lastRejected: RejectedConfig | null = null
  readonly #options: ValidatedMeshOptions

  /** Use createMesh(); the constructor does not wait for discovery. */
  constructor(options: MeshOptions) {
    const o = validateMeshOptions(options)
    this.#options = o
    this.service = o.service
    this.namespace = o.namespace ?? 'default'
    this.revision = o.revision
    this.zone = o.zone
    this.metrics = new MeshMetrics()
    this.inbound = new InboundGate(o.service, this.metrics)
    this.#drainDelay = o.drain?.delay ?? 0
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
      this.#destinations.set(name, new Destination(name, policy, resolverFor(name, svc.endpoints, o.dnsRefresh ?? DEFAULT_DNS_REFRESH), this.zone, this.metrics))
    }
  }

  /** The destination for a mesh service name, or undefined when the name is not a mesh service. */
  destination(name: string): Destination | undefined {
    return this.#destinations.get(name)
  }

  /** Resolves once every destination has its first discovery snapshot. */
  async ready(): Promise<void> {
    await Promise.all([...this.#destinations.values()].map((d) => d.ready))
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
   */
  applyPolicy(service: string, update: unknown, source = 'applyPolicy()'): void {
    const dest = this.#destinations.get(service)
    if (dest === undefined) throw new MeshletError(ErrorCodes.UNKNOWN_SERVICE, `Mesh "${this.service}" has no destination "${service}" to apply a policy to; known: ${[...this.#destinations.keys()].join(', ') || '(none)'}.`)
    const issues: ConfigIssue[] = []
    const policy = policyUpdateSchema.check(update ?? {}, '', issues)
    if (issues.length > 0 || policy === undefined) {
      const error = new ConfigError(issues, `policy update for "${service}" from ${source}`)
      this.#lastRejected = { service, source, at: new Date().toISOString(), issues, message: error.message }
      this.metrics.configRejected.add(1, this.metrics.attributes(`cr:${service}`, () => ({ 'meshlet.destination': service })))
      publish(channels.configRejected, () => ({ ...this.#lastRejected }))
      throw error
    }
    dest.updatePolicy(resolvePolicy(this.#options.defaults, this.#options.services?.[service], policy))
    this.#configVersion++
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
      state: this.#closed ? 'closed' : !this.inbound.accepting ? 'draining' : !this.inbound.ready ? 'not-ready' : 'serving',
      inbound: { inflight: this.inbound.inflight, utilization: this.inbound.utilization },
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
    if (this.#drainDelay > 0 && this.#servers.size > 0) await new Promise((r) => setTimeout(r, this.#drainDelay))
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
