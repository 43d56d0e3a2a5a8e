/**
 * The triggers the dispatcher runs: Trigger resources ∪ the triggers live instances advertise in
 * their registration (`instance.spec.triggers`, from `events(mesh).trigger()`). A resource wins
 * over an advertised trigger of the same namespace and name; a name advertised by several instances
 * takes the newest registration's spec (the revision being rolled out).
 */
import type { Instance, Resource } from '@meshlet/core'
import type { ConfigIssue } from '@meshlet/core'
import type { AdvertisedTrigger, TriggerSpec } from '../../resources/event-specs.js'
import { advertisedTriggerSchema } from '../../resources/trigger-kind.js'

export const TRIGGER_KIND = 'Trigger'
export const BROKER_KIND = 'Broker'

export interface EffectiveTrigger {
  readonly namespace: string
  readonly name: string
  /** `resource`: a Trigger resource; `advertised`: declared in code by a service's instances. */
  readonly source: 'resource' | 'advertised'
  /** For an advertised trigger: subscriber `{ ref: service, uri: path }`. */
  readonly spec: TriggerSpec
  /** The advertising service, for an advertised trigger. */
  readonly service?: string
  /** Why an advertised trigger cannot run as it is (core checks only its shape; events checks its fields here). */
  readonly invalid?: string
}

/** The parts of the control state the dispatcher reads (ControlState has them). */
export interface BrokerStateView {
  list(kind: string, namespace?: string): Resource[]
  instances(filter?: { service?: string | undefined; namespace?: string | undefined }): Instance[]
}

/** Every effective trigger, by `namespace/name`. */
export function effectiveTriggers(state: BrokerStateView): Map<string, EffectiveTrigger> {
  const out = new Map<string, EffectiveTrigger>()
  const newest = new Map<string, Instance>()
  for (const inst of state.instances()) {
    for (const t of advertisedBy(inst)) {
      const key = `${inst.metadata.namespace}/${t.name}`
      const seen = newest.get(key)
      if (seen === undefined || isNewer(inst, seen)) newest.set(key, inst)
    }
  }
  for (const [key, inst] of newest) {
    const name = key.slice(key.indexOf('/') + 1)
    const t = advertisedBy(inst).find((a) => a.name === name)!
    const issues: ConfigIssue[] = []
    advertisedTriggerSchema.check(t, 'trigger', issues)
    out.set(key, {
      ...(issues.length > 0 ? { invalid: `invalid advertised trigger: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}` } : {}),
      namespace: inst.metadata.namespace,
      name,
      source: 'advertised',
      service: inst.spec.service,
      spec: {
        broker: t.broker,
        subscriber: { ref: { kind: 'Service', name: inst.spec.service }, uri: t.path },
        ...(t.filter !== undefined ? { filter: t.filter } : {}),
        ...(t.filters !== undefined ? { filters: t.filters } : {}),
        ...(t.delivery !== undefined ? { delivery: t.delivery } : {}),
      },
    })
  }
  for (const r of state.list(TRIGGER_KIND)) {
    out.set(`${r.metadata.namespace}/${r.metadata.name}`, { namespace: r.metadata.namespace, name: r.metadata.name, source: 'resource', spec: r.spec as TriggerSpec })
  }
  return out
}

/** The triggers an instance advertises (none for an instance registered without `triggers`). */
export function advertisedBy(inst: Instance): readonly AdvertisedTrigger[] {
  const t = (inst.spec as { triggers?: unknown }).triggers
  return Array.isArray(t) ? (t as AdvertisedTrigger[]) : []
}

function isNewer(a: Instance, b: Instance): boolean {
  if (a.metadata.creationTimestamp !== b.metadata.creationTimestamp) return a.metadata.creationTimestamp > b.metadata.creationTimestamp
  return a.metadata.resourceVersion > b.metadata.resourceVersion
}
