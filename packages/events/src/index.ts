/**
 * @meshlet/events: CloudEvents publishing and Knative-style triggers.
 */
export type { AdvertisedTrigger, AttributesFilter, BrokerSpec, DeliverySpec, Destination, FilterSpec, SubscriptionsFilter, TriggerSpec } from './resources/event-specs.js'
export { DEFAULT_BROKER } from './resources/event-specs.js'
export type { BrokerBackend, BrokerRef, BrokerStats, ConsumerOptions, Delivery, TriggerConsumer } from './broker/broker-backend.js'
export { compileCesql, evaluateCesql, CesqlParseError, MAX_EXPRESSION_LENGTH, MAX_NESTING, MAX_STRING_RESULT, type CesqlResult, type CompiledCesql, type CompileCesqlResult, type UnknownFunctionCall, type CesqlError, type CesqlErrorKind, type CesqlType, type CesqlValue } from './filter/cesql/index.js'
export { createJetStreamBackend, type JetStreamBackend } from './broker/jetstream/jetstream-backend.js'
export type { JetStreamBackendOptions, JetStreamTlsOptions } from './broker/jetstream/jetstream-options.js'
export { BATCH_CONTENT_TYPE, cloudEventOf, contentModeOf, decodeHeaderValue, decodeHttpEvents, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_JSON_DEPTH, encodeBatch, encodeBinary, encodeHeaderValue, encodeStructured, eventFromJson, fromStructuredBytes, MAX_CE_HEADERS, parseJsonBatchText, parseJsonEventText, parseMediaType, serializeJsonBatch, serializeJsonEvent, STRUCTURED_CONTENT_TYPE, toJsonObject, toStructuredBytes, withAttributes, type AttributeType, type CodecLimits, type DecodedEvent, type DecodedHttpEvents, type EncodedHttpMessage, type EventInput, type EventInvalidDetails, type EventRule, type ExtensionTypes, type HttpContentMode, type HttpDecodeOptions, type HttpEncodeOptions, type HttpHeadersInput, type HttpHeaderValue, type HttpMessageInput, type JsonDecodeOptions, type JsonFormatOptions, type MediaType } from './codec/index.js'
export { compileFilter, type CompiledFilter, type EventPredicate, type FilterExplanation, type CesqlOutcome } from './filter/compile-filter.js'
export type { FilterableEvent } from './filter/event-attributes.js'
export { filterSpecSchema, filterSpecFields, filtersSchema, subscriptionsFilterSchema, attributesFilterSchema, DIALECTS, MAX_FILTER_DEPTH, MAX_FILTER_ENTRIES, type Dialect } from './filter/filter-spec-schema.js'
export { parseIsoDuration, isoDuration, deliverySpecSchema, destinationSchema, MAX_RETRY } from './resources/delivery-spec.js'
export { triggerKind, triggerSpecSchema, advertisedTriggerSchema, type TriggerResource } from './resources/trigger-kind.js'
export { brokerKind, brokerSpecSchema, type BrokerResource } from './resources/broker-kind.js'
export { eventKinds } from './resources/event-kinds.js'
