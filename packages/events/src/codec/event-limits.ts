/**
 * Size limits of the codec. An event's size is what the CloudEvents spec counts (attributes and
 * data): the body in structured mode, each element's JSON text in a batch, and in binary mode the
 * body plus the ce- headers (names and values) and Content-Type. The spec asks intermediaries to
 * forward events of up to 64 KiB, hence the default.
 */
import { ErrorCodes, MeshletError } from '@meshlet/core'

export const DEFAULT_MAX_EVENT_SIZE = 64 * 1024
/** A batch body above this many bytes is refused before it is parsed. */
export const DEFAULT_MAX_BATCH_SIZE = 1024 * 1024
export const DEFAULT_MAX_BATCH_EVENTS = 1000
/** JSON nesting (objects and arrays, the event object included) above this is refused: deeper data overflows the stack of JSON.stringify and of code walking it. */
export const DEFAULT_MAX_JSON_DEPTH = 64
/** More ce- headers than this is not an event but an attack on the parser. */
export const MAX_CE_HEADERS = 128

export interface CodecLimits {
  /** Largest event, in bytes. Default 64 KiB. */
  maxEventSize?: number
  /** Largest batch body, in bytes. Default 1 MiB. */
  maxBatchSize?: number
  /** Most events in one batch. Default 1000. */
  maxBatchEvents?: number
  /** Deepest JSON nesting of an event (the event object is depth 1). Default 64. */
  maxJsonDepth?: number
}

export type ResolvedLimits = Required<CodecLimits>

function positiveInteger(name: keyof CodecLimits, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new MeshletError(ErrorCodes.CONFIG_INVALID, `${name} must be a positive integer (got ${String(value)})`, { details: { option: name } })
  }
  return value
}

export function resolveLimits(limits: CodecLimits = {}): ResolvedLimits {
  return {
    maxEventSize: positiveInteger('maxEventSize', limits.maxEventSize, DEFAULT_MAX_EVENT_SIZE),
    maxBatchSize: positiveInteger('maxBatchSize', limits.maxBatchSize, DEFAULT_MAX_BATCH_SIZE),
    maxBatchEvents: positiveInteger('maxBatchEvents', limits.maxBatchEvents, DEFAULT_MAX_BATCH_EVENTS),
    maxJsonDepth: positiveInteger('maxJsonDepth', limits.maxJsonDepth, DEFAULT_MAX_JSON_DEPTH),
  }
}
