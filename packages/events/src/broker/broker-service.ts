/**
 * The broker as the control endpoint runs it: takes events from the ingress into the backend, and
 * keeps one TriggerDispatcher running for every effective trigger that can run (Trigger resources
 * ∪ triggers advertised by live instances), following the control state as it changes.
 *
 * Contract:
 * - `accept` resolves once the events are durable in the backend (that is when the ingress answers
 *   202); an event without `knativebrokerttl` gets the default, one whose TTL is spent is dropped.
 * - A trigger runs (has an open consumer) only while its broker exists, it compiles (filter,
 *   delivery), and its subscriber's service has live instances; otherwise it shows why not, and
 *   its events wait in the broker. A Trigger resource deleted, or moved to another broker, deletes
 *   its consumer; an advertised trigger whose instances are all gone only closes it, so the next
 *   instance resumes where the last one left off. A deleted Broker resource deletes its events.
 * - Deliveries go through a mesh per subscriber namespace (service `meshlet-broker`) that follows
 *   this control endpoint with the join token, so they are balanced, broken and retried on connect
 *   failures like any mesh call; Knative's delivery semantics sit on top (trigger-dispatcher.ts).
 */
import { createMesh, type Mesh, type Resource, type WatchEvent } from '@meshlet/core'
import { meshAgent, type MeshAgent } from '@meshlet/http'
import type { CloudEvent } from 'cloudevents'
import type { Dispatcher } from 'undici'
import { DEFAULT_MAX_EVENT_SIZE } from '../codec/event-limits.js'
import { toStructuredBytes, withAttributes } from '../codec/json-format.js'
import { DEFAULT_BROKER, type BrokerSpec, type TriggerSpec } from '../resources/event-specs.js'
import type { BrokerBackend, BrokerRef } from './broker-backend.js'
import type { BrokerLogger, DispatchRuntime } from './dispatcher/dispatch-runtime.js'
import { BROKER_KIND, effectiveTriggers, TRIGGER_KIND, type BrokerStateView, type EffectiveTrigger } from './dispatcher/effective-triggers.js'
import { brokerTtl, DEFAULT_BROKER_TTL, TTL_EXTENSION } from './dispatcher/event-ttl.js'
import { AttemptFailure } from './dispatcher/subscriber-request.js'
import { newTriggerCounters, TriggerDispatcher, type TriggerCounters } from './dispatcher/trigger-dispatcher.js'
import { compileTrigger, planKey, resolveTarget, type Target, type TriggerPlan } from './dispatcher/trigger-plan.js'

/** The service name the broker's deliveries come from (what subscribers see as the caller). */
export const BROKER_SERVICE = 'meshlet-broker'
/**
 * Deliveries in flight per trigger. Loopback deliveries take well under a millisecond of the
 * subscriber's time but a few of the event loop's queueing, so the window must cover that
 * latency: 64 left both processes idle a third of the time. At the 64 KiB event limit 256 is 16 MiB.
 */
export const DEFAULT_MAX_IN_FLIGHT = 256

export interface BrokerServiceOptions {
  readonly backend: BrokerBackend
  /** The control state: resources, instances, and their changes. */
  readonly state: BrokerStateView & { subscribe(listener: (e: WatchEvent) => void): () => void }
  /** This control endpoint, for the broker's own meshes: its URL and the join token. */
  readonly control: { readonly url: string; readonly token: string }
  readonly log: BrokerLogger
  /** Deliveries in flight per trigger (and acks awaiting durability, as many again). Default 256. */
  readonly maxInFlight?: number
  /** The largest event taken (ingress, replies), in bytes. Default the codec's: 64 KiB, the size CloudEvents asks every hop to forward. */
  readonly maxEventSize?: number
}

export interface TriggerStatus {
  namespace: string
  name: string
  broker: string
  source: 'resource' | 'advertised'
  /** The advertising service, for an advertised trigger. */
  service?: string
  /** Where events go: `http://<service>/<path>` (a mesh service) or an absolute URL. */
  subscriber: string
  ready: boolean
  /** Why it is not ready (or why its consumer cannot be read). */
  reason?: string
  /** Events on the broker this trigger has not acked yet; absent while its consumer is closed. */
  lag?: number
  counters: TriggerCounters
}

export interface BrokerStatus {
  namespace: string
  name: string
  /** `default` (exists in every namespace) or `resource` (a Broker resource). */
  source: 'default' | 'resource'
  backend: string
  events?: number
  bytes?: number
  /** Events taken by the ingress since the control endpoint started, and those dropped with a spent TTL. */
  accepted: number
  dropped: number
  triggers: number
  /** Set when the backend could not say (stats failed). */
  error?: string
}

interface Entry {
  trigger: EffectiveTrigger
  counters: TriggerCounters
  dispatcher: TriggerDispatcher | undefined
  plan: TriggerPlan | undefined
  reason: string | undefined
}

export class BrokerService {
  readonly backend: BrokerBackend
  readonly maxEventSize: number
  readonly #o: BrokerServiceOptions
  readonly #runtime: DispatchRuntime
  readonly #entries = new Map<string, Entry>()
  readonly #meshes = new Map<string, Promise<{ mesh: Mesh; agent: MeshAgent }>>()
  /** The meshes of #meshes that have started, for the per-delivery path (no await). */
  readonly #startedMeshes = new Map<string, { mesh: Mesh; agent: MeshAgent }>()
  readonly #ingress = new Map<string, { accepted: number; dropped: number }>()
  /** Trigger resources deleted (namespace/name → broker) since the last reconcile: their consumers go too. */
  readonly #deleted = new Map<string, string>()
  readonly #deletedBrokers: BrokerRef[] = []
  #unsubscribe: (() => void) | undefined
  #reconciling: Promise<void> | undefined
  #dirty = false
  #closed = false

  constructor(options: BrokerServiceOptions) {
    this.#o = options
    this.backend = options.backend
    this.maxEventSize = options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE
    this.#runtime = {
      backend: options.backend,
      log: options.log,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      maxEventSize: this.maxEventSize,
      dispatcherFor: (target, signal, waitMs) => this.#dispatcherFor(target, signal, waitMs),
      readyDispatcher: (target) => this.#readyDispatcher(target),
    }
  }

  /** Follows the control state and starts the triggers that can run; resolves after the first pass. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#o.state.subscribe((e) => this.#onChange(e))
    await this.#schedule()
  }

  /** A broker named `default` exists in every namespace; others need a Broker resource. */
  brokerExists(namespace: string, name: string): boolean {
    return name === DEFAULT_BROKER || this.#o.state.list(BROKER_KIND, namespace).some((b) => b.metadata.name === name)
  }

  /**
   * Stores events on a broker, durably, in order; events whose TTL is spent are dropped (and
   * counted). Rejects with MESHLET_ERR_BROKER_UNAVAILABLE when the backend cannot store them.
   */
  async accept(namespace: string, broker: string, events: readonly CloudEvent<unknown>[]): Promise<{ accepted: number; dropped: number }> {
    const counts = this.#ingressCounts(namespace, broker)
    const stored: Uint8Array[] = []
    let dropped = 0
    for (const e of events) {
      const ttl = brokerTtl(e)
      if (ttl === 0) dropped++
      else stored.push(toStructuredBytes(ttl === undefined ? withAttributes(e, { [TTL_EXTENSION]: DEFAULT_BROKER_TTL }) : e))
    }
    counts.dropped += dropped
    if (stored.length > 0) await this.backend.append({ namespace, name: broker }, stored)
    counts.accepted += stored.length
    return { accepted: stored.length, dropped }
  }

  /** Every effective trigger (running or not), optionally of one namespace, by namespace and name. */
  async triggers(namespace?: string): Promise<TriggerStatus[]> {
    await this.#reconciling
    const entries = [...this.#entries.values()].filter((e) => namespace === undefined || e.trigger.namespace === namespace)
    entries.sort((a, b) => cmp(a.trigger.namespace, b.trigger.namespace) || cmp(a.trigger.name, b.trigger.name))
    return Promise.all(entries.map((e) => this.#status(e)))
  }

  async trigger(namespace: string, name: string): Promise<TriggerStatus | undefined> {
    await this.#reconciling
    const e = this.#entries.get(`${namespace}/${name}`)
    return e === undefined ? undefined : this.#status(e)
  }

  /** Broker resources and, in every namespace that has triggers or took events, `default`. */
  async brokers(namespace?: string): Promise<BrokerStatus[]> {
    await this.#reconciling
    const found = new Map<string, { namespace: string; name: string; source: 'default' | 'resource' }>()
    const add = (ns: string, name: string, source: 'default' | 'resource'): void => {
      if (namespace !== undefined && ns !== namespace) return
      if (!found.has(`${ns}/${name}`) || source === 'resource') found.set(`${ns}/${name}`, { namespace: ns, name, source })
    }
    for (const b of this.#o.state.list(BROKER_KIND)) add(b.metadata.namespace, b.metadata.name, 'resource')
    for (const e of this.#entries.values()) if (e.trigger.spec.broker === DEFAULT_BROKER) add(e.trigger.namespace, DEFAULT_BROKER, 'default')
    for (const key of this.#ingress.keys()) {
      const [ns, name] = key.split('/') as [string, string]
      if (name === DEFAULT_BROKER) add(ns, name, 'default')
    }
    if (namespace !== undefined) add(namespace, DEFAULT_BROKER, 'default')
    const list = [...found.values()].sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name))
    return Promise.all(
      list.map(async (b) => {
        const counts = this.#ingress.get(`${b.namespace}/${b.name}`) ?? { accepted: 0, dropped: 0 }
        const triggers = [...this.#entries.values()].filter((e) => e.trigger.namespace === b.namespace && e.trigger.spec.broker === b.name).length
        const base: BrokerStatus = { ...b, backend: this.backend.kind, accepted: counts.accepted, dropped: counts.dropped, triggers }
        try {
          const s = await this.backend.stats(b)
          return { ...base, events: s.events, bytes: s.bytes }
        } catch (err) {
          return { ...base, error: (err as Error).message }
        }
      }),
    )
  }

  /** Stops every trigger (deliveries in flight stay unacked) and the broker's meshes; the backend is the caller's to close. */
  async close(): Promise<void> {
    this.#closed = true
    this.#unsubscribe?.()
    await this.#reconciling
    await Promise.all([...this.#entries.values()].map((e) => e.dispatcher?.close()))
    const meshes = await Promise.allSettled([...this.#meshes.values()])
    await Promise.all(meshes.map(async (m) => {
      if (m.status !== 'fulfilled') return
      await m.value.agent.close()
      await m.value.mesh.close()
    }))
  }

  #onChange(e: WatchEvent): void {
    if (e.type === 'BOOKMARK') return
    const o = e.object
    if (e.type === 'DELETED' && o.kind === TRIGGER_KIND) this.#deleted.set(`${o.metadata.namespace}/${o.metadata.name}`, ((o as Resource).spec as TriggerSpec).broker)
    if (e.type === 'DELETED' && o.kind === BROKER_KIND) this.#deletedBrokers.push({ namespace: o.metadata.namespace, name: o.metadata.name })
    if (o.kind === TRIGGER_KIND || o.kind === BROKER_KIND || o.kind === 'Instance') void this.#schedule()
  }

  /** Runs a reconcile now, or once more after the one running (changes that arrive meanwhile coalesce). */
  #schedule(): Promise<void> {
    this.#dirty = true
    this.#reconciling ??= (async () => {
      while (this.#dirty && !this.#closed) {
        this.#dirty = false
        try {
          await this.#reconcile()
        } catch (err) {
          this.#o.log.error(`the broker could not apply a change of triggers (${(err as Error)?.stack ?? String(err)}); it tries again with the next change`)
        }
      }
      this.#reconciling = undefined
    })()
    return this.#reconciling
  }

  async #reconcile(): Promise<void> {
    const state = this.#o.state
    const wanted = effectiveTriggers(state)
    const brokerSpecs = new Map<string, BrokerSpec>()
    for (const b of state.list(BROKER_KIND)) brokerSpecs.set(`${b.metadata.namespace}/${b.metadata.name}`, b.spec as BrokerSpec)
    const work: Promise<unknown>[] = []

    for (const [key, entry] of this.#entries) {
      if (wanted.has(key)) continue
      this.#entries.delete(key)
      work.push(this.#stop(entry, this.#deleted.has(key)))
    }
    for (const [key, trigger] of wanted) {
      let entry = this.#entries.get(key)
      if (entry === undefined) this.#entries.set(key, (entry = { trigger, counters: newTriggerCounters(), dispatcher: undefined, plan: undefined, reason: undefined }))
      const previous = entry.dispatcher
      // A trigger that moved to another broker starts afresh there; its place on the old one is forgotten.
      if (previous !== undefined && previous.broker.name !== trigger.spec.broker) {
        entry.dispatcher = undefined
        work.push(this.#stop({ ...entry, dispatcher: previous }, true))
      }
      entry.trigger = trigger
      const brokerDelivery = brokerSpecs.get(`${trigger.namespace}/${trigger.spec.broker}`)?.delivery
      let reason = this.#cannotRun(trigger, brokerSpecs)
      if (reason === undefined && entry.plan?.key !== planKey(trigger.spec, brokerDelivery)) {
        try {
          entry.plan = compileTrigger(trigger.namespace, trigger.spec, brokerDelivery)
        } catch (err) {
          entry.plan = undefined
          reason = (err as Error).message
        }
      }
      const plan = entry.plan
      if (reason === undefined && plan !== undefined) reason = this.#noInstances(plan.subscriber)
      entry.reason = reason
      if (reason !== undefined || plan === undefined) {
        if (entry.dispatcher !== undefined) {
          const d = entry.dispatcher
          entry.dispatcher = undefined
          work.push(d.close())
        }
        continue
      }
      if (entry.dispatcher === undefined) {
        entry.dispatcher = new TriggerDispatcher(this.#runtime, trigger.namespace, trigger.name, trigger.spec.broker, plan, entry.counters)
        entry.dispatcher.start()
      } else entry.dispatcher.update(plan)
    }
    // Consumers of deleted Trigger resources that no advertised trigger of the same name took over.
    for (const [key, broker] of this.#deleted) {
      const now = wanted.get(key)
      if (now === undefined || now.spec.broker !== broker) {
        const [namespace, name] = key.split('/') as [string, string]
        work.push(this.backend.deleteConsumer({ namespace, name: broker }, name).catch((err: unknown) => this.#o.log.warn(`deleting the consumer of deleted trigger ${key} failed: ${(err as Error).message}`)))
      }
    }
    this.#deleted.clear()
    for (const b of this.#deletedBrokers.splice(0)) {
      if (!this.brokerExists(b.namespace, b.name)) work.push(this.backend.deleteBroker(b).catch((err: unknown) => this.#o.log.warn(`deleting the events of deleted broker ${b.namespace}/${b.name} failed: ${(err as Error).message}`)))
    }
    await Promise.all(work)
  }

  #cannotRun(trigger: EffectiveTrigger, brokers: Map<string, BrokerSpec>): string | undefined {
    if (trigger.invalid !== undefined) return trigger.invalid
    const b = trigger.spec.broker
    if (b !== DEFAULT_BROKER && !brokers.has(`${trigger.namespace}/${b}`)) return `broker ${JSON.stringify(b)} does not exist in namespace ${trigger.namespace} (create a Broker resource, or use "${DEFAULT_BROKER}")`
    return undefined
  }

  #noInstances(target: Target): string | undefined {
    if (target.service === undefined) return undefined
    if (this.#o.state.instances({ service: target.service, namespace: target.namespace }).length > 0) return undefined
    return `no live instances of service ${target.service} in namespace ${target.namespace}; its events wait in the broker`
  }

  async #stop(entry: Entry, forget: boolean): Promise<void> {
    const d = entry.dispatcher
    if (d === undefined) return
    await d.close()
    if (forget) await this.backend.deleteConsumer(d.broker, d.name).catch((err: unknown) => this.#o.log.warn(`deleting the consumer of trigger ${d.namespace}/${d.name} failed: ${(err as Error).message}`))
  }

  async #status(e: Entry): Promise<TriggerStatus> {
    const t = e.trigger
    const d = e.dispatcher
    const lag = d === undefined ? undefined : await d.lag()
    const reason = e.reason ?? d?.backendError
    let subscriber: string
    try {
      subscriber = e.plan?.subscriber.url ?? resolveTarget(t.spec.subscriber, t.namespace, 'subscriber').url
    } catch {
      subscriber = '-'
    }
    return {
      namespace: t.namespace,
      name: t.name,
      broker: t.spec.broker,
      source: t.source,
      ...(t.service !== undefined ? { service: t.service } : {}),
      subscriber,
      ready: d !== undefined && d.backendError === undefined,
      ...(reason !== undefined ? { reason } : {}),
      ...(lag !== undefined ? { lag } : {}),
      counters: { ...e.counters },
    }
  }

  #ingressCounts(namespace: string, broker: string): { accepted: number; dropped: number } {
    const key = `${namespace}/${broker}`
    let c = this.#ingress.get(key)
    if (c === undefined) this.#ingress.set(key, (c = { accepted: 0, dropped: 0 }))
    return c
  }

  #meshFor(namespace: string): Promise<{ mesh: Mesh; agent: MeshAgent }> {
    let m = this.#meshes.get(namespace)
    if (m === undefined) {
      m = createMesh({ service: BROKER_SERVICE, namespace, control: this.#o.control.url, token: this.#o.control.token, shutdownSignals: false, defaults: { timeout: false } }).then((mesh) => ({ mesh, agent: meshAgent(mesh) }))
      // A failed start is not kept: the next delivery tries again.
      m.then((started) => this.#startedMeshes.set(namespace, started), () => this.#meshes.delete(namespace))
      this.#meshes.set(namespace, m)
    }
    return m
  }

  #readyDispatcher(target: Target): Dispatcher | undefined {
    const started = this.#startedMeshes.get(target.namespace)
    if (started === undefined) return undefined
    if (target.service !== undefined && started.mesh.destination(target.service) === undefined) return undefined
    return started.agent
  }

  async #dispatcherFor(target: Target, signal: AbortSignal, waitMs: number): Promise<Dispatcher> {
    let mesh: { mesh: Mesh; agent: MeshAgent }
    try {
      mesh = await this.#meshFor(target.namespace)
    } catch (err) {
      throw new AttemptFailure(`the broker's mesh for namespace ${target.namespace} could not start (${(err as Error).message})`, false, { cause: err })
    }
    if (target.service === undefined) return mesh.agent
    const until = Date.now() + waitMs
    // The mesh learns of instances through its watch, a moment after the control state has them.
    while (mesh.mesh.destination(target.service) === undefined) {
      if (signal.aborted) throw signal.reason
      if (Date.now() >= until) throw new AttemptFailure(`the mesh knows no instances of service ${target.service} in namespace ${target.namespace}`, false)
      await new Promise((r) => setTimeout(r, 20))
    }
    return mesh.agent
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
