/** JetStream-specific behaviour beyond the shared suite, against a real nats-server. */
import { isMeshletError } from '@meshlet/core'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createJetStreamBackend, type JetStreamBackend } from '../src/broker/jetstream/jetstream-backend.js'
import { cloudEvent, idOf } from './broker-backend-suite.js'
import { useNatsServer } from './nats-server.js'

const nats = useNatsServer()

async function codeOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work
  } catch (err) {
    return isMeshletError(err) ? err.code : err
  }
  return 'resolved'
}

describe('JetStream backend', () => {
  let backend: JetStreamBackend
  let tests = 0
  let broker: { namespace: string; name: string }

  beforeEach(async () => {
    backend = await createJetStreamBackend({ servers: nats().url, streamPrefix: 'js' })
    broker = { namespace: 'default', name: `b${++tests}` }
  })
  afterEach(async () => {
    await backend.close()
  })

  it('is kind jetstream: a broker is a file stream named after it, a trigger a durable explicit-ack consumer', async () => {
    expect(backend.kind).toBe('jetstream')
    const consumer = await backend.consumer(broker, 'shape', { maxInFlight: 7, ackWait: 2000 })
    await consumer.close()
    const nc = await connect({ servers: nats().url })
    try {
      const jsm = await jetstreamManager(nc)
      const stream = await jsm.streams.info(`js_default_${broker.name}`)
      expect(stream.config).toMatchObject({ storage: 'file', subjects: [`js.default.${broker.name}`], retention: 'limits', discard: 'old', duplicate_window: 120e9 })
      const trigger = await jsm.consumers.info(`js_default_${broker.name}`, 'shape')
      // max_deliver unlimited: the dispatcher dead-letters by deliveryCount, JetStream never drops.
      expect(trigger.config).toMatchObject({ durable_name: 'shape', ack_policy: 'explicit', deliver_policy: 'new', max_ack_pending: 7, ack_wait: 2e9, max_deliver: -1 })
    } finally {
      await nc.close()
    }
  })

  it('stores a republished event once (same source and id, inside the duplicate window)', async () => {
    await backend.append(broker, [cloudEvent('dup', 0), cloudEvent('dup', 1)])
    await backend.append(broker, [cloudEvent('dup', 1), cloudEvent('dup', 2)])
    expect((await backend.stats(broker)).events).toBe(3)
  })

  it('refuses a batch holding something that is not a CloudEvent in JSON, and stores none of it', async () => {
    const bad = new TextEncoder().encode('not json')
    expect(await codeOf(backend.append(broker, [cloudEvent('ok', 0), bad]))).toBe('MESHLET_ERR_EVENT_INVALID')
    expect((await backend.stats(broker)).events).toBe(0)
  })

  it('refuses an event over the server’s max_payload (1 MiB by default) with EVENT_TOO_LARGE', async () => {
    expect(await codeOf(backend.append(broker, [cloudEvent('huge', 0, 2 * 1024 * 1024)]))).toBe('MESHLET_ERR_EVENT_TOO_LARGE')
    await backend.append(broker, [cloudEvent('small', 0)])
    expect((await backend.stats(broker)).events).toBe(1)
  })

  it('refuses a second open consumer of one trigger with CONFLICT, and bad consumer options with CONFIG_INVALID', async () => {
    const consumer = await backend.consumer(broker, 't')
    expect(await codeOf(backend.consumer(broker, 't'))).toBe('MESHLET_ERR_CONFLICT')
    await consumer.close()
    await (await backend.consumer(broker, 't')).close()
    expect(await codeOf(backend.consumer(broker, 'u', { maxInFlight: 0 }))).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(await codeOf(backend.consumer(broker, 'u', { ackWait: 1.5 }))).toBe('MESHLET_ERR_CONFIG_INVALID')
  })

  it('carries names JetStream forbids (dots, wildcards, spaces, `_`) end to end, without collisions', async () => {
    const dotted = { namespace: 'team.a', name: `orders > *${tests}` }
    const underscored = { namespace: 'team_a', name: `orders${tests}` }
    const a = await backend.consumer(dotted, 'ship.it now', { maxInFlight: 1 })
    const b = await backend.consumer(underscored, 'ship_it', { maxInFlight: 1 })
    await backend.append(dotted, [cloudEvent('dotted', 0)])
    await backend.append(underscored, [cloudEvent('underscored', 0)])
    const fromA = await a.next()
    const fromB = await b.next()
    expect([idOf(fromA), idOf(fromB)]).toEqual(['dotted-0', 'underscored-0'])
    await Promise.all([fromA.ack(), fromB.ack()])
    await Promise.all([a.close(), b.close()])
  })

  it('keeps a trigger’s position when it is reopened with other options', async () => {
    let consumer = await backend.consumer(broker, 'reopened', { maxInFlight: 1 })
    await backend.append(broker, [cloudEvent('p', 0), cloudEvent('p', 1)])
    const first = await consumer.next()
    await first.ack()
    await consumer.close()
    consumer = await backend.consumer(broker, 'reopened', { maxInFlight: 8, ackWait: 1000 })
    const next = await consumer.next()
    expect(idOf(next)).toBe('p-1')
    await next.ack()
    await consumer.close()
  })

  it('rejects consumer operations after close with BROKER_UNAVAILABLE', async () => {
    const consumer = await backend.consumer(broker, 'closing', { maxInFlight: 1 })
    await backend.close()
    expect(await codeOf(consumer.next())).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(await codeOf(backend.consumer(broker, 'other'))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(await codeOf(backend.stats(broker))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(backend.connected).toBe(false)
  })
})

it('refuses bad options with CONFIG_INVALID before connecting', async () => {
  expect(await codeOf(createJetStreamBackend({ servers: [], streamPrefix: 'has_underscore' }))).toBe('MESHLET_ERR_CONFIG_INVALID')
})
