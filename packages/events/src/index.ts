/**
 * @meshlet/events: CloudEvents publishing and Knative-style triggers.
 */
export type { AdvertisedTrigger, AttributesFilter, BrokerSpec, DeliverySpec, Destination, FilterSpec, SubscriptionsFilter, TriggerSpec } from './resources/event-specs.js'
export { DEFAULT_BROKER } from './resources/event-specs.js'
export type { BrokerBackend, BrokerRef, BrokerStats, ConsumerOptions, Delivery, TriggerConsumer } from './broker/broker-backend.js'
export { compileCesql, evaluateCesql, CesqlParseError, MAX_EXPRESSION_LENGTH, MAX_NESTING, MAX_STRING_RESULT, type CesqlResult, type CompiledCesql, type CompileCesqlResult, type UnknownFunctionCall, type CesqlError, type CesqlErrorKind, type CesqlType, type CesqlValue } from './filter/cesql/index.js'
export { createJetStreamBackend, type JetStreamBackend } from './broker/jetstream/jetstream-backend.js'
export type { JetStreamBackendOptions, JetStreamTlsOptions } from './broker/jetstream/jetstream-options.js'
