/**
 * The codec's refusals, each a MeshletError with a stable code: EVENT_INVALID (400) names the
 * attribute and the rule it broke in `details`, EVENT_TOO_LARGE (413) gives the limit and the
 * option that raises it, UNSUPPORTED_MEDIA_TYPE (415) names the media types that are taken.
 */
import { ErrorCodes, MeshletError } from '@meshlet/core'

/** The rules an event can break; `details.rule` of EVENT_INVALID is one of these. */
export type EventRule =
  | 'required' | 'type' | 'non-empty' | 'specversion' | 'characters' | 'uri' | 'uri-reference'
  | 'timestamp' | 'media-type' | 'name' | 'integer-range' | 'base64' | 'exclusive' | 'reserved'
  | 'representation' | 'json' | 'utf-8' | 'object' | 'array' | 'duplicate' | 'depth'
  | 'header-encoding' | 'quoted-string' | 'percent-encoding' | 'specversion-mismatch'

export interface EventInvalidDetails {
  /** The attribute (or `data`, `event`, `batch`, a header name) the rule is about. */
  attribute: string
  rule: EventRule
  /** The position in a batch, for an event of a batch. */
  index?: number
}

export function eventInvalid(attribute: string, rule: EventRule, message: string, index?: number): MeshletError {
  const where = index === undefined ? '' : `batch[${index}]: `
  const details: EventInvalidDetails = index === undefined ? { attribute, rule } : { attribute, rule, index }
  return new MeshletError(ErrorCodes.EVENT_INVALID, `Invalid CloudEvent: ${where}${message}`, { details: { ...details } })
}

/** Re-raises an EVENT_INVALID of one event of a batch with its position in the message and details. */
export function atBatchIndex(error: MeshletError, index: number): MeshletError {
  const details = error.details as EventInvalidDetails | undefined
  if (error.code !== ErrorCodes.EVENT_INVALID || details === undefined) return error
  return eventInvalid(details.attribute, details.rule, error.message.replace(/^Invalid CloudEvent: /, ''), index)
}

/** `what` is "event", "batch", "batch event count" and so on; `option` is the setting that raises the limit. */
export function eventTooLarge(what: string, size: number, limit: number, option: string, unit = 'bytes'): MeshletError {
  return new MeshletError(
    ErrorCodes.EVENT_TOO_LARGE,
    `CloudEvent ${what} too large: ${size} ${unit} is over the limit of ${limit} ${unit}; send less, or raise ${option} on the receiver (and the broker)`,
    { details: { what, size, limit, option } },
  )
}

export function unsupportedMediaType(contentType: string, reason: string): MeshletError {
  return new MeshletError(
    ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
    `Unsupported CloudEvents media type ${JSON.stringify(contentType)}: ${reason}; send application/cloudevents+json (structured), application/cloudevents-batch+json (batch), or the data's own type with ce- headers (binary)`,
    { details: { contentType } },
  )
}
