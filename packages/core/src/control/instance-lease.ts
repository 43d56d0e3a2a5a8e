/**
 * This process's registration with the control endpoint: one lease, kept alive by heartbeats.
 *
 * Contract:
 * - `register` registers at most once: overlapping calls (an adapter's and the app's) share one
 *   registration, and later calls get the same lease id.
 * - While the endpoint is unreachable or failing (no answer, 5xx, 408, 429), registering goes on in
 *   the background, with backoff (0.25 s doubling to 10 s, jittered), until it succeeds or `end()`:
 *   the lease comes once the endpoint is back. Each `register` call's promise settles with the next
 *   outcome: the lease id, or the failure (MESHLET_ERR_UNREACHABLE, saying that it keeps trying). A
 *   refusal that retrying cannot fix (a wrong token, an invalid registration) stops it and is
 *   answered with the endpoint's code. The promises are never unhandled rejections: a caller that
 *   ignores one (`server.listen(port, () => mesh.register({ port }))`) cannot crash the process.
 * - Each heartbeat carries `report()`. A lease the endpoint no longer has (expired during an
 *   outage, store restored) is registered anew under the same registration; other heartbeat
 *   failures are ignored (the next beat tries again).
 * - `advertise(triggers)` sets the event triggers the registration carries (`register({ triggers })`
 *   sets them too; the latest call wins). Registered already: the lease is replaced by one carrying
 *   them — the new lease is taken before the old is given back, so the instance never drops out of
 *   the endpoint's list; a failed replacement is tried again at each heartbeat until it lands.
 * - `end()` stops registering: a registration still in flight is given back as soon as it lands
 *   (and its caller gets MESHLET_ERR_CLOSED), and the lease is deregistered. Deregistration
 *   failures are swallowed: the lease then expires on its own.
 */
import { errorInfo, ErrorCodes, MeshletError, type ErrorCode } from '../errors.js'
import type { AdvertisedTriggerEntry, InstanceRegistration } from '../resources/instance.js'
import { ControlRequestError, type ControlClient } from './control-client.js'

export interface RegisterOptions {
  port: number
  address?: string
  protocols?: ('http' | 'https' | 'h2c' | 'grpc')[]
  metadata?: Record<string, string>
  /** Event triggers this instance serves (as `advertise()` sets them). */
  triggers?: readonly AdvertisedTriggerEntry[]
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
  /** Uniform in [0, 1), for the retry jitter (tests pass their own). */
  random?: () => number
}

/** First wait before registering again after a failure, and the longest. */
export const REGISTER_RETRY_MIN = 250
export const REGISTER_RETRY_MAX = 10_000

/** Failures that a later try may not meet: no answer, the endpoint failing, or asking to slow down. */
function isTransient(err: unknown): boolean {
  if (!(err instanceof ControlRequestError)) return true
  return err.status === 0 || err.status >= 500 || err.status === 408 || err.status === 429
}

/** A promise whose rejection is never reported as unhandled (callers may drop it). */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined)
  return p
}

export class InstanceLease {
  readonly #o: InstanceLeaseOptions
  #lease: { id: string; timer: NodeJS.Timeout; registration: InstanceRegistration } | undefined
  #registering: Promise<string> | undefined
  /** Callers waiting for the next outcome of the background registration. */
  #waiting: { resolve: (id: string) => void; reject: (err: unknown) => void }[] = []
  /** Wakes the background registration from its backoff (end() does). */
  #wake: (() => void) | undefined
  #ended = false
  /** What the registration advertises; a lease whose registration carries another array is replaced. */
  #triggers: readonly AdvertisedTriggerEntry[] = []
  /** A replacement of the lease is running; `#replaceAgain` asks it to go round once more. */
  #replacing = false
  #replaceAgain = false

  constructor(options: InstanceLeaseOptions) {
    this.#o = options
  }

  /** The lease id while registered. */
  get id(): string | undefined {
    return this.#lease?.id
  }

  register(options: RegisterOptions): Promise<string> {
    if (options.triggers !== undefined) this.advertise(options.triggers)
    if (this.#ended) return handled(Promise.reject(new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.#o.instance.service}" is closing; it does not register any more.`)))
    if (this.#lease !== undefined) return Promise.resolve(this.#lease.id)
    const next = handled(new Promise<string>((resolve, reject) => this.#waiting.push({ resolve, reject })))
    this.#registering ??= handled(this.#keepRegistering(options).finally(() => (this.#registering = undefined)))
    return next
  }

  /** Sets the triggers the registration advertises; a lease held already is replaced by one with them. */
  advertise(triggers: readonly AdvertisedTriggerEntry[]): void {
    this.#triggers = triggers
    if (this.#lease !== undefined) void this.#replace()
  }

  /**
   * Registers the current registration anew and gives the old lease back, until the lease carries
   * the latest triggers. Failures are left to the next heartbeat, which calls this again.
   */
  async #replace(): Promise<void> {
    if (this.#replacing) return void (this.#replaceAgain = true)
    this.#replacing = true
    try {
      do {
        this.#replaceAgain = false
        const lease = this.#lease
        if (lease === undefined || this.#ended || lease.registration.triggers === this.#advertised()) return
        const registration = this.#withTriggers(lease.registration)
        const r = await this.#o.client.register(registration)
        if (this.#ended || this.#lease !== lease) {
          await this.#o.client.deregister(r.id).catch(() => undefined)
          return
        }
        const old = lease.id
        lease.id = r.id
        lease.registration = registration
        await this.#o.client.deregister(old).catch(() => undefined)
      } while (this.#replaceAgain)
    } catch {
      // The endpoint is away or failing: the next heartbeat tries again.
    } finally {
      this.#replacing = false
    }
  }

  /** The triggers a current registration carries: the very array advertised (identity tells a stale lease), none when empty. */
  #advertised(): AdvertisedTriggerEntry[] | undefined {
    return this.#triggers.length === 0 ? undefined : (this.#triggers as AdvertisedTriggerEntry[])
  }

  #withTriggers(registration: InstanceRegistration): InstanceRegistration {
    const { triggers: _stale, ...rest } = registration
    const triggers = this.#advertised()
    return triggers === undefined ? rest : { ...rest, triggers }
  }

  /** Registers, and on a transient failure tries again after a backoff, until it succeeds, is refused for good, or end(). */
  async #keepRegistering(options: RegisterOptions): Promise<string> {
    const random = this.#o.random ?? Math.random
    let wait = REGISTER_RETRY_MIN
    for (;;) {
      try {
        const id = await this.#registerOnce(options)
        this.#tell((w) => w.resolve(id))
        return id
      } catch (err) {
        const retrying = !this.#ended && isTransient(err)
        const error = this.#explain(err, retrying, wait)
        this.#tell((w) => w.reject(error))
        if (!retrying) throw error
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.round(wait * (0.5 + random())))
        timer.unref()
        this.#wake = () => (clearTimeout(timer), resolve())
      })
      this.#wake = undefined
      wait = Math.min(REGISTER_RETRY_MAX, wait * 2)
      if (this.#ended) {
        const error = new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.#o.instance.service}" closed before it could register.`)
        this.#tell((w) => w.reject(error))
        throw error
      }
    }
  }

  #tell(settle: (w: { resolve: (id: string) => void; reject: (err: unknown) => void }) => void): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const w of waiting) settle(w)
  }

  #explain(err: unknown, retrying: boolean, wait: number): unknown {
    if (err instanceof MeshletError) return err
    const { service, namespace } = this.#o.instance
    const why = (err as Error)?.message ?? String(err)
    if (retrying) {
      return new MeshletError(ErrorCodes.UNREACHABLE, `Mesh "${service}" (namespace "${namespace}") could not register with the control endpoint: ${why}. It keeps trying in the background (next try in about ${Math.round(wait / 1000 * 10) / 10}s, backing off to ${REGISTER_RETRY_MAX / 1000}s) and registers once the endpoint is back; calls it makes are not affected.`, { cause: err, details: { service, namespace } })
    }
    const code = err instanceof ControlRequestError && errorInfo(err.code) !== undefined ? (err.code as ErrorCode) : ErrorCodes.UNKNOWN
    return new MeshletError(code, `Mesh "${service}" (namespace "${namespace}") was refused registration by the control endpoint: ${why}. Not retried: fix this (a join token is passed as \`token\` to createMesh) and register again.`, { cause: err, details: { service, namespace } })
  }

  /**
   * Ends the lease: waits for a registration in flight, then deregisters; resolves true when this
   * process was registered (peers then need the drain delay to stop choosing it). False at once,
   * without a promise, when there is nothing to end: close() then goes on in the same tick.
   */
  end(): Promise<boolean> | false {
    this.#ended = true
    this.#wake?.()
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
      ...(this.#advertised() !== undefined ? { triggers: this.#advertised() } : {}),
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
    // advertise() while this was in flight: the lease carries older triggers.
    if (registration.triggers !== this.#advertised()) void this.#replace()
    return r.id
  }

  async #heartbeat(): Promise<void> {
    const lease = this.#lease
    if (lease === undefined) return
    try {
      await this.#o.client.heartbeat(lease.id, this.#o.report())
      if (lease.registration.triggers !== this.#advertised()) void this.#replace()
    } catch (err) {
      if (err instanceof ControlRequestError && err.code === ErrorCodes.LEASE_NOT_FOUND && this.#lease === lease && !this.#replacing) {
        try {
          const registration = this.#withTriggers(lease.registration)
          lease.id = (await this.#o.client.register(registration)).id
          lease.registration = registration
        } catch {
          // The endpoint is away; the next beat tries again.
        }
      }
    }
  }
}
