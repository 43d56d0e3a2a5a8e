/**
 * `Trigger` (Knative eventing.knative.dev/v1 Trigger): subscribes a destination to a broker's
 * events that pass its filters, with a delivery policy. Also the schema of a trigger declared in
 * code (`AdvertisedTrigger`), which the broker treats as a Trigger on the advertising service.
 */
import { defineKind, schema as s, type ConfigIssue, type Resource } from '@meshlet/core'
import { filterSpecFields } from '../filter/filter-spec-schema.js'
import { deliverySpecSchema, destinationSchema } from './delivery-spec.js'
import type { AdvertisedTrigger, TriggerSpec } from './event-specs.js'

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const NAME_HINT = 'a DNS label (lowercase letters, digits and "-", at most 63 characters, starting and ending with a letter or digit)'
const brokerName = s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63, description: 'The Broker, in the same namespace ("default" exists without a Broker resource).' })

export const triggerSpecSchema: s.Schema<TriggerSpec> = s.object(
  {
    broker: brokerName,
    ...filterSpecFields,
    subscriber: destinationSchema,
    delivery: deliverySpecSchema,
  },
  { required: ['broker', 'subscriber'], description: 'Delivers the events of a broker that pass the filters to the subscriber.' },
) as s.Schema<TriggerSpec>

export type TriggerResource = Resource<TriggerSpec>

/** A delivery policy whose parts contradict each other. */
function checkDelivery(spec: TriggerSpec | AdvertisedTrigger, path: string, issues: ConfigIssue[]): void {
  const d = spec.delivery
  if (d?.backoffPolicy !== undefined && d.retry === 0) issues.push({ path: `${path}.backoffPolicy`, message: 'has no effect with retry: 0 (no retries to space out); remove it or allow retries' })
}

export const triggerKind = defineKind<TriggerSpec>({
  kind: 'Trigger',
  plural: 'triggers',
  aliases: ['trigger', 'trig'],
  description: 'Subscribes a destination to the events of a broker that pass its filters (Knative Trigger).',
  spec: triggerSpecSchema,
  crossCheck: (spec, issues) => checkDelivery(spec, 'spec.delivery', issues),
})

const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/

/** A trigger declared in code by `events(mesh).trigger(name, spec, handler)` and advertised at registration. */
export const advertisedTriggerSchema: s.Schema<AdvertisedTrigger> = {
  description: 'A trigger declared in code: the broker treats it as a Trigger whose subscriber is the advertising service at path.',
  check(v, path, issues) {
    const before = issues.length
    const out = s.object(
      {
        name: s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63 }),
        broker: brokerName,
        path: s.string({ pattern: PATH, patternHint: 'a URL path starting with "/"', maxLength: 1024 }),
        ...filterSpecFields,
        delivery: deliverySpecSchema,
      },
      { required: ['name', 'broker', 'path'] },
    ).check(v, path, issues) as AdvertisedTrigger | undefined
    if (out === undefined || issues.length > before) return undefined
    checkDelivery(out, path ? `${path}.delivery` : 'delivery', issues)
    return issues.length > before ? undefined : out
  },
  jsonSchema: () => ({
    type: 'object',
    additionalProperties: false,
    required: ['name', 'broker', 'path'],
    properties: {
      name: { type: 'string', pattern: NAME.source, maxLength: 63 },
      broker: brokerName.jsonSchema(),
      path: { type: 'string', pattern: PATH.source, maxLength: 1024 },
      filter: filterSpecFields.filter.jsonSchema(),
      filters: filterSpecFields.filters.jsonSchema(),
      delivery: deliverySpecSchema.jsonSchema(),
    },
  }),
}
