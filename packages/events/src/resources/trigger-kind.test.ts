import { builtinKinds, ConfigError, ResourceRegistry } from '@meshlet/core'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { brokerKind } from './broker-kind.js'
import { eventKinds } from './event-kinds.js'
import { advertisedTriggerSchema, triggerKind } from './trigger-kind.js'

const registry = new ResourceRegistry([...builtinKinds, ...eventKinds])

/** A Knative Trigger as its docs write it, with meshlet's apiVersion. */
const knativeTrigger = `
apiVersion: meshlet.dev/v1
kind: Trigger
metadata: { name: notify-on-order, namespace: shop }
spec:
  broker: default
  filters:
    - prefix: { type: com.shop.order. }
    - any:
        - exact: { region: eu }
        - cesql: "region IN ('uk', 'ch')"
  subscriber:
    ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: notify }
    uri: /orders
  delivery:
    retry: 3
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    deadLetterSink: { ref: { name: dead-letters } }
`

function problems(doc: unknown): { path: string; message: string }[] {
  try {
    registry.validate(doc)
  } catch (e) {
    if (e instanceof ConfigError) return [...e.issues]
    throw e
  }
  return []
}

describe('Trigger and Broker kinds', () => {
  it('register beside the built-in kinds under their names', () => {
    expect(eventKinds).toEqual([triggerKind, brokerKind])
    expect(registry.lookup('triggers')).toBe(triggerKind)
    expect(registry.lookup('Broker')).toBe(brokerKind)
  })

  it('accepts a Knative Trigger as written, keeping its fields', () => {
    const raw = parse(knativeTrigger) as { spec: unknown }
    const r = registry.validate(raw)
    expect(r.kind).toBe('Trigger')
    expect(r.metadata).toEqual({ name: 'notify-on-order', namespace: 'shop' })
    expect(r.spec).toEqual(raw.spec)
  })

  it('refuses a CESQL parse error at apply time, naming the entry and the column', () => {
    const doc = parse(knativeTrigger.replace(`"region IN ('uk', 'ch')"`, `"region IN ('uk', 'ch'"`))
    expect(problems(doc)).toEqual([{ path: 'spec.filters[1].any[1].cesql', message: 'is not a valid CESQL expression: expected ")" to close the set of IN, got the end of the expression at column 22' }])
  })

  it('names each bad field', () => {
    const doc = parse(knativeTrigger.replace('retry: 3', 'retry: 500').replace('broker: default', 'broker: Default').replace('uri: /orders', 'uri: orders'))
    expect(problems(doc).map((p) => p.path)).toEqual(['spec.broker', 'spec.subscriber.uri', 'spec.delivery.retry'])
    const noSubscriber = { apiVersion: 'meshlet.dev/v1', kind: 'Trigger', metadata: { name: 't' }, spec: { broker: 'default' } }
    expect(problems(noSubscriber)).toEqual([{ path: 'spec.subscriber', message: 'is required' }])
    const twoDialects = { ...noSubscriber, spec: { broker: 'default', subscriber: { ref: { name: 's' } }, filters: [{ exact: { type: 'a' }, cesql: 'TRUE' }] } }
    expect(problems(twoDialects)).toEqual([{ path: 'spec.filters[0]', message: 'has 2 dialects (exact, cesql); an entry takes exactly one: split it into separate entries (entries are ANDed)' }])
  })

  it('cross-checks delivery: a backoffPolicy with retry 0 is refused', () => {
    const doc = parse(knativeTrigger.replace('retry: 3', 'retry: 0'))
    expect(problems(doc)).toEqual([{ path: 'spec.delivery.backoffPolicy', message: 'has no effect with retry: 0 (no retries to space out); remove it or allow retries' }])
  })

  it('accepts a Broker with or without delivery defaults, and names bad ones', () => {
    const broker = { apiVersion: 'meshlet.dev/v1', kind: 'Broker', metadata: { name: 'orders' }, spec: {} }
    expect(registry.validate(broker).spec).toEqual({})
    expect(registry.validate({ ...broker, spec: { delivery: { retry: 10, timeout: 'PT10S' } } }).spec).toEqual({ delivery: { retry: 10, timeout: 'PT10S' } })
    expect(problems({ ...broker, spec: { delivery: { timeout: '10s' } } })[0]!.path).toBe('spec.delivery.timeout')
    expect(problems({ ...broker, spec: { config: {} } })[0]!.path).toBe('spec.config')
  })

  it('publishes JSON Schema for both kinds', () => {
    const js = registry.kindJsonSchema(triggerKind) as { properties: { spec: { required: string[]; properties: Record<string, unknown> } } }
    expect(js.properties.spec.required).toEqual(['broker', 'subscriber'])
    expect(Object.keys(js.properties.spec.properties)).toEqual(['broker', 'filter', 'filters', 'subscriber', 'delivery'])
    expect(JSON.stringify(registry.jsonSchema())).toContain('"Broker"')
  })
})

describe('advertisedTriggerSchema', () => {
  const check = (v: unknown) => {
    const issues: { path: string; message: string }[] = []
    return { value: advertisedTriggerSchema.check(v, 'triggers[0]', issues), issues }
  }

  it('accepts a trigger declared in code', () => {
    const t = { name: 'notify-on-order', broker: 'default', path: '/_meshlet/events/notify-on-order', filters: [{ cesql: "type LIKE 'order.%'" }], delivery: { retry: 2 } }
    expect(check(t)).toEqual({ value: t, issues: [] })
  })

  it('names what is wrong: name, path, filters', () => {
    const { issues } = check({ name: 'Notify', broker: 'default', path: 'events', filters: [{ cesql: 'type =' }] })
    expect(issues.map((i) => i.path)).toEqual(['triggers[0].name', 'triggers[0].path', 'triggers[0].filters[0].cesql'])
    expect(check({ broker: 'default', path: '/x' }).issues).toEqual([{ path: 'triggers[0].name', message: 'is required' }])
  })
})
