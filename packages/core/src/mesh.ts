/**
 * createMesh and the Mesh facade: validates options and wires the parts, each with one job:
 * DestinationRegistry (destinations by name, lazy for control-known services, idle eviction),
 * ConfigApplier (live policy and routes), ControlSync (the control endpoint's watch),
 * InstanceLease (registration and heartbeats) and Lifecycle (readiness and the drain order).
 */
import { resolvePolicy, validateMeshOptions, type MeshOptionsInput, type ValidatedMeshOptions } from './config/mesh-options.js'
import { ConfigApplier, withoutService, type RejectedConfig } from './config/config-applier.js'
import { ControlClient } from './control/control-client.js'
import { ControlSync, snapshotFileFor, type SyncSource } from './control/control-sync.js'
import { InstanceLease, type RegisterOptions } from './control/instance-lease.js'
import { Destination, type DestinationSnapshot } from './destination.js'
import { DestinationRegistry, type DynamicDestination } from './destination-registry.js'
import { ClientStack } from './client/client-stack.js'
import { ControlResolver } from './discovery/resolver-control.js'
import { resolverForEndpoints } from './discovery/resolver-for-endpoints.js'
import { ErrorCodes, MeshletError } from './errors.js'
import { Lifecycle, type DrainableServer, type LifecycleState } from './lifecycle/lifecycle.js'
import { AdmissionController, type AdmissionSnapshot } from './admission/admission-controller.js'
import { InboundGate } from './server/inbound-gate.js'
import type { AdvertisedTriggerEntry } from './resources/instance.js'
import { RouteTable } from './routing/route-table.js'
import { channels, publish } from './telemetry/diagnostics.js'
import { MeshMetrics } from './telemetry/metrics.js'

export type MeshOptions = MeshOptionsInput
export type { DrainableServer } from './lifecycle/lifecycle.js'
export type { RejectedConfig } from './config/config-applier.js'

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
  state: LifecycleState
  /** `admission`: limit, permits out, queue, shedding state and refusals by reason (drain and deadline ones too). */
  inbound: { inflight: number; utilization: number; admission: AdmissionSnapshot }
  destinations: Record<string, DestinationSnapshot>
}

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
  /**
   * The client stack every destination builds its per-transport stacks from: list its roles with
   * `roles()`, change them by name with `insertBefore`, `insertAfter`, `replace`, `remove`
   * (destinations rebuild on their next call).
   */
  readonly clientStack = new ClientStack()
  readonly #options: ValidatedMeshOptions
  readonly #destinations: DestinationRegistry
  readonly #config: ConfigApplier
  readonly #lifecycle: Lifecycle
  readonly #control: ControlClient | undefined
  readonly #sync: ControlSync | undefined
  readonly #lease: InstanceLease | undefined
  #syncStarted: Promise<unknown> | undefined

  /** Use createMesh(); the constructor does not wait for discovery. */
  constructor(options: MeshOptions) {
    const o = (this.#options = validateMeshOptions(options))
    this.service = o.service
    this.namespace = o.namespace ?? 'default'
    this.revision = o.revision
    this.zone = o.zone
    this.metrics = new MeshMetrics()
    this.inbound = new InboundGate(o.service, this.metrics, o.admission === undefined ? undefined : new AdmissionController(o.service, o.admission, this.metrics))
    if (o.control !== undefined) this.#control = new ControlClient({ url: o.control, token: o.token })
    this.#destinations = new DestinationRegistry({ create: (name) => this.#controlDestination(name), idleTimeout: o.destinationIdleTimeout || Infinity })
    this.#config = new ConfigApplier({ mesh: o.service, options: o, lookup: (name) => this.#destinations.peek(name), known: () => this.#destinations.names(), metrics: this.metrics })
    for (const [name, svc] of Object.entries(o.services ?? {})) {
      const dest = new Destination(name, resolvePolicy(o.defaults, svc), resolverForEndpoints(name, svc.endpoints, o.dnsRefresh ?? DEFAULT_DNS_REFRESH), this.zone, this.metrics, this.clientStack)
      if (svc.routes !== undefined) dest.updateRoutes(new RouteTable([{ service: name, rules: svc.routes }], `services.${name}.routes`))
      this.#destinations.addStatic(name, dest)
    }
    if (this.#control !== undefined) {
      this.#sync = new ControlSync(
        this.#control,
        this.namespace,
        {
          endpoints: (service, endpoints) => {
            // Statically configured: options win. Not yet used: read from the sync on first use.
            if (!this.#destinations.isStatic(service)) this.#destinations.controlResolver(service)?.update(endpoints)
          },
          routes: (service, specs, source) => {
            if (this.#destinations.peek(service) !== undefined) this.#config.applyRoutesQuietly(service, specs, source)
          },
          policy: (service, specs, source) => {
            if (this.#destinations.peek(service) !== undefined) this.#config.applyPolicyQuietly(service, specs.map(withoutService), source)
          },
        },
        { snapshotFile: o.cacheDir === undefined ? undefined : snapshotFileFor(o.cacheDir, this.namespace, this.service), snapshotMaxAge: o.snapshotMaxAge ?? DEFAULT_SNAPSHOT_MAX_AGE },
      )
      this.#lease = new InstanceLease({
        client: this.#control,
        instance: { service: this.service, namespace: this.namespace, revision: this.revision, zone: this.zone },
        ttl: o.leaseTtl ?? DEFAULT_LEASE_TTL,
        heartbeatInterval: o.heartbeatInterval,
        report: () => this.#report(),
      })
    }
    this.#lifecycle = new Lifecycle({
      service: this.service,
      inbound: this.inbound,
      drainTimeout: o.drain?.timeout ?? DEFAULT_DRAIN_TIMEOUT,
      drainDelay: o.drain?.delay,
      defaultDelay: (registered) => (registered ? DEFAULT_CONTROL_DRAIN_DELAY : 0),
      signals: o.shutdownSignals === false ? [] : (o.shutdownSignals ?? ['SIGTERM']),
      deregister: () => this.#lease?.end() ?? false,
      closeClients: async () => {
        this.#sync?.close()
        await this.#destinations.closeAll()
      },
    })
  }

  /**
   * The destination for a mesh service name, or undefined when the name is not a mesh service.
   * Services the control endpoint knows get a destination on first use.
   */
  destination(name: string): Destination | undefined {
    return this.#destinations.get(name)
  }

  /** Resolves once every destination has its first discovery snapshot, and the control state (or its snapshot) is in. */
  async ready(): Promise<void> {
    if (this.#sync !== undefined) await (this.#syncStarted ??= this.#sync.start())
    await Promise.all(this.#destinations.destinations().map((d) => d.ready))
  }

  #controlDestination(name: string): DynamicDestination | undefined {
    const sync = this.#sync
    if (sync === undefined || !sync.knows(name) || this.#lifecycle.closing) return undefined
    const resolver = new ControlResolver(name, this.#control!.url, sync.endpointsOf(name))
    const destination = new Destination(name, resolvePolicy(this.#options.defaults), resolver, this.zone, this.metrics, this.clientStack)
    return { destination, resolver, init: () => this.#config.applyInitial(name, sync.routesOf(name), sync.policyOf(name)) }
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
  register(options: RegisterOptions): Promise<string> {
    if (this.#lease === undefined) return Promise.reject(new MeshletError(ErrorCodes.CONFIG_INVALID, `Mesh "${this.service}" has no control endpoint to register with; pass \`control\` to createMesh.`))
    if (this.#lifecycle.closing) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.service}" is closing; it does not register any more.`))
    return this.#lease.register(options)
  }

  /**
   * Sets the event triggers this instance advertises in its registration (the whole list; `[]`
   * for none), for @meshlet/events. Registered already: the lease is replaced by one carrying them.
   * Without a control endpoint there is no broker to tell, and this does nothing.
   */
  advertise(triggers: readonly AdvertisedTriggerEntry[]): void {
    this.#lease?.advertise(triggers)
  }

  /** The control endpoint this mesh follows and the token it was given; undefined in static mode. For clients of its other APIs (the event ingress). */
  get controlEndpoint(): { readonly url: string; readonly token: string | undefined } | undefined {
    return this.#control === undefined ? undefined : { url: this.#control.url, token: this.#options.token }
  }

  /** What this instance tells the control endpoint about itself with each heartbeat (for `meshlet inspect`). */
  #report(): Record<string, unknown> {
    const destinations: Record<string, unknown> = {}
    for (const d of this.#destinations.destinations()) {
      const snap = d.snapshot()
      destinations[d.name] = {
        breaker: snap.breaker?.state ?? 'off',
        endpoints: snap.endpoints.slice(0, 50).map((e) => ({ url: e.url, latencyMs: e.latencyMs, inflight: e.inflight, requests: e.requests, failures: e.failures, ejected: e.ejected })),
      }
    }
    return { state: this.#lifecycle.state, inflight: this.inbound.inflight, utilization: Math.round(this.inbound.utilization * 100) / 100, admission: this.inbound.admissionSnapshot(), configVersion: this.#config.version, destinations }
  }

  /**
   * Registers a server to drain on close() and, with `shutdownSignals`, on SIGTERM. Adapters call
   * this; apps with a bare node:http server may too.
   */
  attachServer(server: DrainableServer): void {
    this.#lifecycle.attachServer(server)
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
    this.#config.applyPolicy(service, update, source)
  }

  /**
   * Replaces the routes of one destination with the rules of the given Route specs (several
   * Routes for one service: their rules in order). Refused like an invalid policy update.
   */
  applyRoutes(service: string, specs: readonly unknown[], source = 'applyRoutes()'): void {
    this.#config.applyRoutes(service, specs, source)
  }

  inspect(): MeshSnapshot {
    const destinations: Record<string, DestinationSnapshot> = {}
    for (const d of this.#destinations.destinations()) destinations[d.name] = d.snapshot()
    return {
      service: this.service,
      namespace: this.namespace,
      revision: this.revision,
      zone: this.zone,
      configVersion: this.#config.version,
      lastRejectedConfig: this.#config.lastRejected,
      control: this.#sync === undefined ? null : { url: this.#control!.url, lease: this.#lease?.id ?? null, ...this.#sync.status() },
      state: this.#lifecycle.state,
      inbound: { inflight: this.inbound.inflight, utilization: this.inbound.utilization, admission: this.inbound.admissionSnapshot() },
      destinations,
    }
  }

  /** Graceful shutdown; safe to call more than once (later calls share the first's promise). */
  close(): Promise<void> {
    return this.#lifecycle.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
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
