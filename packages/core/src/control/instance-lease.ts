/**
 * This process's registration with the control endpoint: one lease, kept alive by heartbeats.
 *
 * Contract:
 * - `register` registers at most once: overlapping calls (an adapter's and the app's) share one
 *   registration, and later calls get the same lease id.
 * - Each heartbeat carries `report()`. A lease the endpoint no longer has (expired during an
 *   outage, store restored) is registered anew under the same registration; other heartbeat
 *   failures are ignored (the next beat tries again).
 * - `end()` stops registering: a registration still in flight is given back as soon as it lands
 *   (and its caller gets MESHLET_ERR_CLOSED), and the lease is deregistered. Deregistration
 *   failures are swallowed: the lease then expires on its own.
 */
import { ErrorCodes, MeshletError } from '../errors.js'
import type { InstanceRegistration } from '../resources/instance.js'
import { ControlRequestError, type ControlClient } from './control-client.js'

export interface RegisterOptions {
  port: number
  address?: string
  protocols?: ('http' | 'https' | 'h2c' | 'grpc')[]
  metadata?: Record<string, string>
}

export interface InstanceLeaseOptions {
  client: ControlClient
  /** Who registers: service, namespace, and revision and zone when known. */
  instance: { service: string; namespace: string; revision: string | undefined; zone: string | undefined }
  /** Lease time asked for (ms). */
  ttl: number
  /** Heartbeat interval (ms); default a third of the ttl granted, at least 50 ms. */
  heartbeatInterval?: number | undefined
  /** What each heartbeat reports about this instance. */
  report: () => Record<string, unknown>
}

export class InstanceLease {
  readonly #o: InstanceLeaseOptions
  #lease: { id: string; timer: NodeJS.Timeout; registration: InstanceRegistration } | undefined
  #registering: Promise<string> | undefined
  #ended = false

  constructor(options: InstanceLeaseOptions) {
    this.#o = options
  }

  /** The lease id while registered. */
  get id(): string | undefined {
    return this.#lease?.id
  }

  register(options: RegisterOptions): Promise<string> {
    if (this.#ended) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.#o.instance.service}" is closing; it does not register any more.`))
    if (this.#lease !== undefined) return Promise.resolve(this.#lease.id)
    this.#registering ??= this.#registerOnce(options).finally(() => (this.#registering = undefined))
    return this.#registering
  }

  /**
   * Ends the lease: waits for a registration in flight, then deregisters; resolves true when this
   * process was registered (peers then need the drain delay to stop choosing it). False at once,
   * without a promise, when there is nothing to end: close() then goes on in the same tick.
   */
  end(): Promise<boolean> | false {
    this.#ended = true
    if (this.#registering === undefined && this.#lease === undefined) return false
    return this.#end()
  }

  async #end(): Promise<boolean> {
    if (this.#registering !== undefined) await this.#registering.catch(() => undefined)
    const lease = this.#lease
    if (lease === undefined) return false
    this.#lease = undefined
    clearInterval(lease.timer)
    try {
      await this.#o.client.deregister(lease.id)
    } catch {
      // Unreachable or already gone: the lease expires on its own.
    }
    return true
  }

  async #registerOnce(options: RegisterOptions): Promise<string> {
    const { service, namespace, revision, zone } = this.#o.instance
    const registration: InstanceRegistration = {
      service,
      namespace,
      port: options.port,
      ...(revision !== undefined ? { revision } : {}),
      ...(zone !== undefined ? { zone } : {}),
      ...(options.address !== undefined ? { address: options.address } : {}),
      protocols: options.protocols ?? ['http'],
      ...(options.metadata !== undefined ? { metadata: options.metadata } : {}),
      ttl: this.#o.ttl,
    }
    const r = await this.#o.client.register(registration)
    if (this.#ended) {
      // end() began while this was in flight: give the lease back at once.
      await this.#o.client.deregister(r.id).catch(() => undefined)
      throw new MeshletError(ErrorCodes.CLOSED, `Mesh "${service}" closed while registering; the lease was returned.`)
    }
    const timer = setInterval(() => void this.#heartbeat(), this.#o.heartbeatInterval ?? Math.max(50, Math.floor(r.ttl / 3)))
    timer.unref()
    this.#lease = { id: r.id, timer, registration }
    return r.id
  }

  async #heartbeat(): Promise<void> {
    const lease = this.#lease
    if (lease === undefined) return
    try {
      await this.#o.client.heartbeat(lease.id, this.#o.report())
    } catch (err) {
      if (err instanceof ControlRequestError && err.code === ErrorCodes.LEASE_NOT_FOUND && this.#lease === lease) {
        try {
          lease.id = (await this.#o.client.register(lease.registration)).id
        } catch {
          // The endpoint is away; the next beat tries again.
        }
      }
    }
  }
}
