/**
 * The event a dead-letter sink gets: the event as it was sent to the subscriber, plus Knative's
 * error extensions (knative/eventing pkg/kncloudevents/attributes/knative_error.go) saying where it
 * failed and how, so whoever drains the sink can act without the broker's log.
 */
import type { CloudEvent } from 'cloudevents'
import { withAttributes } from '../../codec/json-format.js'

export const ERROR_DEST_EXTENSION = 'knativeerrordest'
export const ERROR_CODE_EXTENSION = 'knativeerrorcode'
export const ERROR_DATA_EXTENSION = 'knativeerrordata'
/** knativeerrordata is at most this many base64 characters (the first 768 bytes of the body), as Knative's. */
export const ERROR_DATA_MAX_LENGTH = 1024

export interface DeliveryFailure {
  /** The URL the event was POSTed to. */
  readonly destination: string
  /** The last answer's status (500 for an attempt that got none, as Knative). */
  readonly status: number
  readonly body: Uint8Array
}

export function deadLetterEvent(event: CloudEvent<unknown>, failure: DeliveryFailure): CloudEvent<unknown> {
  // Encoding only the bytes that fit keeps a large body from costing a large string.
  const fitting = Buffer.from(failure.body.buffer, failure.body.byteOffset, Math.min(failure.body.byteLength, (ERROR_DATA_MAX_LENGTH / 4) * 3))
  return withAttributes(event, { [ERROR_DEST_EXTENSION]: failure.destination, [ERROR_CODE_EXTENSION]: failure.status, [ERROR_DATA_EXTENSION]: fitting.toString('base64') })
}
