/**
 * The shapes of the event resources, with Knative Eventing's field names (eventing.knative.dev/v1
 * Trigger and Broker, duck DeliverySpec and Destination). These types are the contract between the
 * schemas (`trigger-kind.ts`, `broker-kind.ts`), the filters, the dispatcher and `events(mesh)`.
 * Durations are ISO 8601 strings on the wire (`PT0.2S`), as in Knative.
 */

/** Legacy Knative filter: every attribute must equal its value exactly; an empty value means "present". */
export interface AttributesFilter {
  attributes: Record<string, string>
}

/** One entry of Knative's `filters` (the CloudEvents Subscriptions API dialects): exactly one key. */
export type SubscriptionsFilter =
  | { exact: Record<string, string> }
  | { prefix: Record<string, string> }
  | { suffix: Record<string, string> }
  | { all: SubscriptionsFilter[] }
  | { any: SubscriptionsFilter[] }
  | { not: SubscriptionsFilter }
  | { cesql: string }

/** `filter` and `filters` as a Trigger holds them: a non-empty `filters` overrides `filter`; entries are ANDed. */
export interface FilterSpec {
  filter?: AttributesFilter
  filters?: SubscriptionsFilter[]
}

/** Where events go: a mesh service (`ref`, with `uri` as a path relative to it) or an absolute `uri`. */
export interface Destination {
  /** `apiVersion` is accepted (Knative writes one) and ignored: a ref names a mesh service. */
  ref?: { apiVersion?: string; kind?: 'Service'; name: string; namespace?: string }
  uri?: string
}

/** Knative's DeliverySpec. */
export interface DeliverySpec {
  /** Retries after the first attempt (Knative `retry`). */
  retry?: number
  backoffPolicy?: 'linear' | 'exponential'
  /** ISO 8601 duration: the base delay (linear: delay × n; exponential: delay × 2^n). */
  backoffDelay?: string
  /** ISO 8601 duration: the time one attempt may take. */
  timeout?: string
  /** ISO 8601 duration: the most a Retry-After header may delay the next attempt. */
  retryAfterMax?: string
  deadLetterSink?: Destination
}

export interface TriggerSpec extends FilterSpec {
  /** The Broker's name, in the Trigger's namespace. */
  broker: string
  subscriber: Destination
  delivery?: DeliverySpec
}

export interface BrokerSpec {
  /** Defaults for the delivery of every Trigger on this broker (a Trigger's own fields win). */
  delivery?: DeliverySpec
}

/**
 * A trigger declared in code by `events(mesh).trigger(name, spec, handler)`: the instance advertises
 * it in its registration, and the broker treats it as a Trigger whose subscriber is that service at
 * `path`. A Trigger resource of the same namespace and name wins over an advertised one.
 */
export interface AdvertisedTrigger extends FilterSpec {
  name: string
  broker: string
  /** The receiver's path on the instance, e.g. `/_meshlet/events/notify-on-order`. */
  path: string
  delivery?: DeliverySpec
}

/** Every namespace has a broker of this name without a Broker resource; other names need one. */
export const DEFAULT_BROKER = 'default'
