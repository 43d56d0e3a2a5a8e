/**
 * `Broker` (Knative eventing.knative.dev/v1 Broker): a named event log in a namespace, with the
 * delivery defaults of its triggers. The broker named "default" exists in every namespace without
 * a resource; a Broker resource of that name only sets its defaults.
 */
import { defineKind, schema as s, type Resource } from '@meshlet/core'
import { deliverySpecSchema } from './delivery-spec.js'
import type { BrokerSpec } from './event-specs.js'

export const brokerSpecSchema: s.Schema<BrokerSpec> = s.object(
  { delivery: deliverySpecSchema },
  { description: 'A broker; delivery holds the defaults of its triggers (a Trigger\'s own fields win).' },
) as s.Schema<BrokerSpec>

export type BrokerResource = Resource<BrokerSpec>

export const brokerKind = defineKind<BrokerSpec>({
  kind: 'Broker',
  plural: 'brokers',
  aliases: ['broker', 'br'],
  description: 'A named event broker in a namespace, with delivery defaults for its triggers (Knative Broker).',
  spec: brokerSpecSchema,
})
