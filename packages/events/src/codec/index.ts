/**
 * The CloudEvents wire codec: the JSON event format and the HTTP binding (binary, structured,
 * batched), with the limits and refusals they share.
 */
export type { AttributeType, ExtensionTypes } from './attribute-rules.js'
export type { EventInvalidDetails, EventRule } from './codec-errors.js'
export {
  DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_JSON_DEPTH, MAX_CE_HEADERS,
  type CodecLimits,
} from './event-limits.js'
export { decodeHeaderValue, encodeHeaderValue } from './header-encoding.js'
export {
  BATCH_CONTENT_TYPE, contentModeOf, decodeHttpEvents, encodeBatch, encodeBinary, encodeStructured, STRUCTURED_CONTENT_TYPE,
  type DecodedHttpEvents, type EncodedHttpMessage, type HttpContentMode, type HttpDecodeOptions, type HttpEncodeOptions,
  type HttpHeadersInput, type HttpHeaderValue, type HttpMessageInput,
} from './http-binding.js'
export {
  cloudEventOf, eventFromJson, fromStructuredBytes, parseJsonBatchText, parseJsonEventText, serializeJsonBatch,
  serializeJsonEvent, toJsonObject, toStructuredBytes, withAttributes,
  type DecodedEvent, type EventInput, type JsonDecodeOptions, type JsonFormatOptions,
} from './json-format.js'
export { parseMediaType, type MediaType } from './media-type.js'
