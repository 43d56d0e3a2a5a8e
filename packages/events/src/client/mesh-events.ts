/**
 * `events(mesh)`: publish CloudEvents to a broker of the mesh's control endpoint, and declare
 * triggers whose deliveries this service handles. A facade over its parts, each with one job:
 * Publisher (publish, retries, the outbox), TriggerReceiver (one trigger's deliveries), the node
 * and Fastify receivers (mounting), trigger-advertisement (the mesh's registration).
 *
 * Lifecycle: `close()` stops advertising its triggers, answers later deliveries 503 (the broker
 * tries again, elsewhere or later), aborts the signals of handlers still running, stops the outbox
 * sender (spooled events stay on disk for the next start) and releases connections.
 */
import { ConfigError, ErrorCodes, MeshletError, type ConfigIssue, type Mesh } from '@meshlet/core'
import { DEFAULT_MAX_EVENT_SIZE } from '../codec/index.js'
import { advertisedTriggerSchema } from '../resources/trigger-kind.js'
import { DEFAULT_BROKER, type AdvertisedTrigger, type DeliverySpec, type FilterSpec } from '../resources/event-specs.js'
import { DeliveryCounters, type TriggerCounts } from './delivery-counters.js'
import { fastifyPlugin, type EventsFastifyPlugin } from './fastify-receiver.js'
import { nodeRequestHandler, RECEIVER_PREFIX, type NodeRequestHandler, type ReceiverHost } from './node-receiver.js'
import { Publisher, type OutboxStatus, type PublishOptions } from './publisher.js'
import type { PublishableEvent } from './published-event.js'
import { advertiseTrigger, withdrawTriggers } from './trigger-advertisement.js'
import { TriggerReceiver, type DeliveryAnswer, type TriggerHandler } from './trigger-receiver.js'

export interface EventsOptions {
  /** A directory for the publisher outbox: publishing goes on (durably, in order) while the broker is away. Off by default. */
  outbox?: string
  /** Most bytes the outbox holds; a publish that does not fit fails MESHLET_ERR_BROKER_UNAVAILABLE. Default 64 MiB. */
  outboxMaxBytes?: number
  /** Largest event published or received, in bytes. Default 64 KiB. */
  maxEventSize?: number
  /** Without an outbox: how long publish() keeps trying while the broker is unavailable (ms). Default 10 s. */
  publishTimeout?: number
}

export interface TriggerOptions extends FilterSpec {
  /** Default `default`. */
  broker?: string
  delivery?: DeliverySpec
}

export interface EventsSnapshot {
  triggers: (AdvertisedTrigger & TriggerCounts)[]
  /** Null without an outbox. */
  outbox: OutboxStatus | null
  closed: boolean
}

export class MeshEvents implements AsyncDisposable {
  readonly mesh: Mesh
  readonly #maxEventSize: number
  readonly #publisher: Publisher
  readonly #counters: DeliveryCounters
  readonly #triggers = new Map<string, { advertised: AdvertisedTrigger; receiver: TriggerReceiver }>()
  readonly #closing = new AbortController()
  readonly #host: ReceiverHost
  #handler: NodeRequestHandler | undefined
  #fastify: EventsFastifyPlugin | undefined
  #closed: Promise<void> | undefined

  /** Use events(mesh, options). */
  constructor(mesh: Mesh, options: EventsOptions = {}) {
    this.mesh = mesh
    this.#maxEventSize = checkPositive('maxEventSize', options.maxEventSize) ?? DEFAULT_MAX_EVENT_SIZE
    this.#counters = new DeliveryCounters(mesh)
    this.#publisher = new Publisher({
      mesh,
      maxEventSize: this.#maxEventSize,
      publishTimeout: checkPositive('publishTimeout', options.publishTimeout) ?? 10_000,
      outbox: options.outbox === undefined ? undefined : { dir: options.outbox, maxBytes: checkPositive('outboxMaxBytes', options.outboxMaxBytes) ?? 64 * 1024 * 1024 },
    })
    if (options.outbox !== undefined) this.#counters.observeOutbox(() => this.#publisher.outboxStatus()?.depth ?? 0)
    this.#host = { maxEventSize: this.#maxEventSize, deliver: (name, delivery, signal) => this.#deliver(name, delivery, signal) }
  }

  /**
   * Sends events to a broker (`default` unless `options.broker`): a CloudEvent or an object of its
   * attributes (`id`, `source`, `specversion` and `time` are filled in when absent); a list goes
   * as one batch. Resolves once the broker has stored them durably, or, with an outbox, once they
   * are durable in the outbox (while the broker is away or the outbox still holds earlier events).
   * Rejects with MESHLET_ERR_EVENT_INVALID / EVENT_TOO_LARGE (not retried), or with
   * MESHLET_ERR_BROKER_UNAVAILABLE once `publishTimeout` is spent or the outbox is full.
   */
  publish(event: PublishableEvent | readonly PublishableEvent[], options: PublishOptions = {}): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(new MeshletError(ErrorCodes.CLOSED, `events(mesh "${this.mesh.service}") is closed; publish before close().`))
    return this.#publisher.publish(event, options)
  }

  /**
   * Declares a trigger: deliveries of the broker's events that pass the filters come to `handler`
   * at `/_meshlet/events/<name>` on this service (mount `handler()` or `fastify`), and the mesh
   * advertises the trigger in its registration so the broker knows it. Throws
   * MESHLET_ERR_CONFIG_INVALID naming the field for an invalid spec or a name already taken.
   */
  trigger(name: string, options: TriggerOptions, handler: TriggerHandler): AdvertisedTrigger {
    if (this.#closed !== undefined) throw new MeshletError(ErrorCodes.CLOSED, `events(mesh "${this.mesh.service}") is closed; declare triggers before close().`)
    if (typeof handler !== 'function') throw new MeshletError(ErrorCodes.CONFIG_INVALID, `trigger("${String(name)}") needs a handler function as its third argument.`)
    const { broker = DEFAULT_BROKER, filter, filters, delivery, ...rest } = options ?? {}
    const issues: ConfigIssue[] = []
    const declared = { ...rest, name, broker, path: `${RECEIVER_PREFIX}${String(name)}`, ...(filter !== undefined ? { filter } : {}), ...(filters !== undefined ? { filters } : {}), ...(delivery !== undefined ? { delivery } : {}) }
    const advertised = advertisedTriggerSchema.check(declared, '', issues)
    if (advertised === undefined || issues.length > 0) throw new ConfigError(issues, `trigger "${String(name).slice(0, 63)}"`)
    if (this.#triggers.has(advertised.name)) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `Trigger "${advertised.name}" is declared twice; trigger names are unique per service.`, { details: { trigger: advertised.name } })
    advertiseTrigger(this.mesh, advertised)
    this.#triggers.set(advertised.name, { advertised, receiver: new TriggerReceiver(advertised.name, handler, this.mesh, this.#maxEventSize, this.#counters) })
    return advertised
  }

  /** The receivers as a node:http listener and Express middleware (other paths go to `next()`). */
  handler(): NodeRequestHandler {
    return (this.#handler ??= nodeRequestHandler(this.#host))
  }

  /** The receivers as a Fastify plugin: `await app.register(ev.fastify)`. */
  get fastify(): EventsFastifyPlugin {
    return (this.#fastify ??= fastifyPlugin(this.#host))
  }

  /** Resolves once the outbox is empty: every spooled event is with the broker (at once without an outbox). */
  flush(): Promise<void> {
    return this.#publisher.flush()
  }

  inspect(): EventsSnapshot {
    return {
      triggers: [...this.#triggers.values()].map(({ advertised }) => ({ ...advertised, ...this.#counters.counts(advertised.name) })),
      outbox: this.#publisher.outboxStatus(),
      closed: this.#closed !== undefined,
    }
  }

  /** See the module's lifecycle note; safe to call more than once. */
  close(): Promise<void> {
    return (this.#closed ??= this.#close())
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #close(): Promise<void> {
    withdrawTriggers(this.mesh, this.#triggers.keys())
    this.#closing.abort()
    this.#counters.close()
    await this.#publisher.close()
  }

  async #deliver(name: string, delivery: { headers: Record<string, string | string[] | undefined>; body: Uint8Array }, signal: AbortSignal): Promise<DeliveryAnswer> {
    if (this.#closed !== undefined) return { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8', 'meshlet-rejected': '1' }, body: 'events receiver closed' }
    const trigger = this.#triggers.get(name)
    if (trigger === undefined) return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `no trigger "${name.slice(0, 63)}" here` }
    return trigger.receiver.receive(delivery, AbortSignal.any([signal, this.#closing.signal]))
  }
}

function checkPositive(option: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isSafeInteger(value) || value < 1) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `events(mesh, { ${option} }) must be a positive integer, got ${String(value)}.`, { details: { option } })
  return value
}

/** The events API of one mesh; see MeshEvents. */
export function events(mesh: Mesh, options?: EventsOptions): MeshEvents {
  return new MeshEvents(mesh, options)
}
