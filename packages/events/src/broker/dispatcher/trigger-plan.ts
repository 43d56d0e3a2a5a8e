/**
 * What one version of a trigger compiles into, once (not per event): its filter, its delivery
 * policy (the trigger's over its broker's), and where its subscriber and dead-letter sink are.
 * Compiling fails with the reason `meshlet get triggers` shows (a CESQL expression that does not
 * parse, a duration that is not ISO 8601, a subscriber with neither ref nor uri).
 */
import type { DeliverySpec, Destination, TriggerSpec } from '../../resources/event-specs.js'
import { compileFilter } from '../../filter/compile-filter.js'
import type { FilterableEvent } from '../../filter/event-attributes.js'
import { resolveDeliveryPolicy, type DeliveryPolicy } from './delivery-policy.js'

/**
 * A destination resolved: a mesh service in a namespace at a path, or an absolute URL. `origin`
 * and `path` are what a delivery dispatches (split once here, not per event); `url` is both together.
 */
export type Target = (
  | { readonly service: string; readonly namespace: string; readonly url: string }
  | { readonly service?: undefined; readonly namespace: string; readonly url: string }
) & { readonly origin: string; readonly path: string }

export interface TriggerPlan {
  /** Reads attributes only: a decoded CloudEvent or a stored event's parsed members both fit. */
  readonly filter: (event: FilterableEvent) => boolean
  readonly policy: DeliveryPolicy
  readonly subscriber: Target
  readonly deadLetterSink: Target | undefined
  /** Equal keys: the same plan (a changed resourceVersion with the same spec recompiles nothing). */
  readonly key: string
}

export function planKey(spec: TriggerSpec, brokerDelivery: DeliverySpec | undefined): string {
  return JSON.stringify([spec.filter ?? null, spec.filters ?? null, spec.subscriber, spec.delivery ?? null, brokerDelivery ?? null])
}

/** Throws an Error whose message is the reason the trigger cannot run. */
export function compileTrigger(namespace: string, spec: TriggerSpec, brokerDelivery: DeliverySpec | undefined): TriggerPlan {
  let filter: TriggerPlan['filter']
  try {
    filter = compileFilter({ ...(spec.filter !== undefined ? { filter: spec.filter } : {}), ...(spec.filters !== undefined ? { filters: spec.filters } : {}) })
  } catch (err) {
    throw new Error(`bad filter: ${(err as Error).message}`, { cause: err })
  }
  let policy: DeliveryPolicy
  try {
    policy = resolveDeliveryPolicy(spec.delivery, brokerDelivery)
  } catch (err) {
    throw new Error(`bad delivery: ${(err as Error).message}`, { cause: err })
  }
  const subscriber = resolveTarget(spec.subscriber, namespace, 'subscriber')
  const deadLetterSink = policy.deadLetterSink === undefined ? undefined : resolveTarget(policy.deadLetterSink, namespace, 'delivery.deadLetterSink')
  return { filter, policy, subscriber, deadLetterSink, key: planKey(spec, brokerDelivery) }
}

/** Knative's Destination: `ref` (a service; `uri` then is a path on it) or an absolute `uri`. */
export function resolveTarget(dest: Destination, namespace: string, field: string): Target {
  if (dest.ref !== undefined) {
    const ns = dest.ref.namespace ?? namespace
    const path = dest.uri === undefined || dest.uri === '' ? '/' : dest.uri.startsWith('/') ? dest.uri : `/${dest.uri}`
    return { service: dest.ref.name, namespace: ns, origin: `http://${dest.ref.name}`, path, url: `http://${dest.ref.name}${path}` }
  }
  if (dest.uri !== undefined && /^https?:\/\//i.test(dest.uri)) {
    let url: URL
    try {
      url = new URL(dest.uri)
    } catch {
      throw new Error(`bad ${field}: ${JSON.stringify(dest.uri)} is not a URL`)
    }
    return { namespace, origin: url.origin, path: `${url.pathname}${url.search}`, url: dest.uri }
  }
  throw new Error(`bad ${field}: give a ref to a service (with uri as a path on it) or an absolute http(s) uri`)
}
