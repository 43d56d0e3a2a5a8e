/**
 * @meshlet/events: CloudEvents publishing and Knative-style triggers.
 */
export type { AdvertisedTrigger, AttributesFilter, BrokerSpec, DeliverySpec, Destination, FilterSpec, SubscriptionsFilter, TriggerSpec } from './resources/event-specs.js'
export { DEFAULT_BROKER } from './resources/event-specs.js'
export type { BrokerBackend, BrokerRef, BrokerStats, ConsumerOptions, Delivery, TriggerConsumer } from './broker/broker-backend.js'
