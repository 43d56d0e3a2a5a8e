import { ErrorCodes, isMeshletError, MeshletError } from '@meshlet/core'
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream'
import { InvalidArgumentError } from '@nats-io/transport-node'

/** The one failure a broker operation reports to its caller: the broker did not do it (try later). */
export function brokerUnavailable(message: string, details?: Record<string, unknown>, cause?: unknown): MeshletError {
  return new MeshletError(ErrorCodes.BROKER_UNAVAILABLE, message, { details, cause })
}

/**
 * A NATS or JetStream failure as the MeshletError a caller can act on: a payload over the server's
 * `max_payload` is EVENT_TOO_LARGE (sending it again fails the same way); everything else (timeouts,
 * a lost connection, no JetStream, a full stream) is BROKER_UNAVAILABLE, with the original as cause.
 */
export function toBrokerError(err: unknown, doing: string, details?: Record<string, unknown>): MeshletError {
  if (isMeshletError(err)) return err
  if (err instanceof InvalidArgumentError && /max_payload/.test(err.message)) {
    return new MeshletError(ErrorCodes.EVENT_TOO_LARGE, `The event is larger than the NATS server's max_payload; nothing was stored while ${doing}.`, { details, cause: err })
  }
  const reason = err instanceof Error ? err.message : String(err)
  return brokerUnavailable(`JetStream could not complete ${doing}: ${reason}.`, details, err)
}

export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound
}

export function isConsumerNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound
}
