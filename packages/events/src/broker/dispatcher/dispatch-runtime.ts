/** What a trigger's dispatcher needs from the process that hosts it (the broker service). */
import type { Dispatcher } from 'undici'
import type { BrokerBackend } from '../broker-backend.js'
import type { Target } from './trigger-plan.js'

/** Where the broker reports what the person on call should see (the control endpoint's Logger fits). */
export interface BrokerLogger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

export interface DispatchRuntime {
  readonly backend: BrokerBackend
  readonly log: BrokerLogger
  /** Deliveries per trigger at once (the consumer's window). */
  readonly maxInFlight: number
  /** The largest reply event (and the most of any answer's body) read. */
  readonly maxEventSize: number
  /**
   * The dispatcher to send to `target` with: the mesh agent of its namespace, once that mesh knows
   * the target's service (it learns of new instances through its watch, a moment after the control
   * state does). Throws an AttemptFailure when it does not within `waitMs`.
   */
  dispatcherFor(target: Target, signal: AbortSignal, waitMs: number): Promise<Dispatcher>
  /** The same dispatcher when it is there at once (the mesh started and knows the service), else undefined: the per-delivery path. */
  readyDispatcher(target: Target): Dispatcher | undefined
}
