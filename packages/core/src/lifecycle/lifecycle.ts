/**
 * The process's shutdown, in the order that avoids the sidecar ordering bugs:
 * not ready → leave the registry → propagation delay → stop accepting → drain in-flight requests
 * (within the drain timeout) → close the servers → close the clients.
 *
 * Contract:
 * - `close()` runs the sequence once; later calls share its promise. It never rejects.
 * - `attachServer` adds a server to drain and, the first time, installs the shutdown signal
 *   handlers; after close() began it throws MESHLET_ERR_CLOSED.
 * - On a signal: close(), then remove the handlers and re-raise the signal when nobody else
 *   listens, so the process ends as it would have without us.
 * - The propagation delay is `drainDelay` when set, else `defaultDelay(registered)` (peers learn
 *   of a deregistration through their watch); it is skipped when no server is attached.
 * - Idle connections are closed as soon as accepting stops; busy ones after the drain, or at the
 *   drain timeout.
 */
import { ErrorCodes, MeshletError } from '../errors.js'
import { channels, publish } from '../telemetry/diagnostics.js'

/** A server the mesh drains on close: node:http, https and http2 servers all fit. */
export interface DrainableServer {
  close(callback?: (err?: Error) => void): unknown
  closeIdleConnections?(): void
  closeAllConnections?(): void
}

/** The inbound side as the shutdown drives it. */
export interface DrainableInbound {
  readonly ready: boolean
  readonly accepting: boolean
  markNotReady(): void
  stopAccepting(): void
  /** Resolves with the number of requests still running when it gave up waiting (0: idle). */
  waitIdle(timeoutMs: number): Promise<number>
  close(): void
}

export interface LifecycleOptions {
  service: string
  inbound: DrainableInbound
  /** Longest wait for in-flight requests (ms). */
  drainTimeout: number
  /** The propagation delay (ms), when configured. */
  drainDelay?: number | undefined
  defaultDelay: (registered: boolean) => number
  signals: readonly NodeJS.Signals[]
  /** Leaves the registry: true when this process had registered; false without a promise when it never did (the drain then starts in the same tick). */
  deregister: () => Promise<boolean> | boolean
  /** Closes the outbound side (control watch, destinations) once inbound is drained. */
  closeClients: () => Promise<void>
  /** The clock for the durations published on `meshlet:drain`. Default Date.now. */
  now?: () => number
  /** Waits `ms`; tests pass their own. Default setTimeout. */
  sleep?: (ms: number) => Promise<void>
}

export type LifecycleState = 'serving' | 'not-ready' | 'draining' | 'closed'

export class Lifecycle {
  readonly #o: LifecycleOptions
  readonly #servers = new Set<DrainableServer>()
  readonly #onSignal: (signal: NodeJS.Signals) => void
  readonly #now: () => number
  #signalsInstalled = false
  #closing: Promise<void> | undefined
  #closed = false

  constructor(options: LifecycleOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#onSignal = (signal) => {
      void this.close().finally(() => {
        this.#removeSignals()
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      })
    }
  }

  /** True from the first close() on. */
  get closing(): boolean {
    return this.#closing !== undefined
  }

  get state(): LifecycleState {
    const inbound = this.#o.inbound
    return this.#closed ? 'closed' : !inbound.accepting ? 'draining' : !inbound.ready ? 'not-ready' : 'serving'
  }

  attachServer(server: DrainableServer): void {
    if (this.#closed || this.#closing) throw new MeshletError(ErrorCodes.CLOSED, `Mesh "${this.#o.service}" is closing; attach servers before calling close().`)
    this.#servers.add(server)
    if (!this.#signalsInstalled) {
      this.#signalsInstalled = true
      for (const s of this.#o.signals) process.on(s, this.#onSignal)
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  async #shutdown(): Promise<void> {
    const { service, inbound } = this.#o
    const t0 = this.#now()
    publish(channels.drain, () => ({ service, phase: 'not-ready' }))
    inbound.markNotReady()
    // Deregister first, then give peers the delay to stop choosing us.
    const leaving = this.#o.deregister()
    const registered = typeof leaving === 'boolean' ? leaving : await leaving.catch(() => false)
    const delay = this.#o.drainDelay ?? this.#o.defaultDelay(registered)
    if (delay > 0 && this.#servers.size > 0) await (this.#o.sleep ?? sleep)(delay)
    publish(channels.drain, () => ({ service, phase: 'stop-accepting' }))
    inbound.stopAccepting()
    const serversClosed = [...this.#servers].map((s) => new Promise<void>((resolve) => void s.close(() => resolve())))
    for (const s of this.#servers) s.closeIdleConnections?.()
    const stillRunning = await inbound.waitIdle(this.#o.drainTimeout)
    publish(channels.drain, () => ({ service, phase: 'drained', stillRunning, ms: this.#now() - t0 }))
    for (const s of this.#servers) {
      if (stillRunning > 0) s.closeAllConnections?.()
      else s.closeIdleConnections?.()
    }
    await Promise.all(serversClosed)
    await this.#o.closeClients().catch(() => undefined)
    inbound.close()
    this.#removeSignals()
    this.#closed = true
    publish(channels.drain, () => ({ service, phase: 'closed', ms: this.#now() - t0 }))
  }

  #removeSignals(): void {
    for (const s of this.#o.signals) process.off(s, this.#onSignal)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
