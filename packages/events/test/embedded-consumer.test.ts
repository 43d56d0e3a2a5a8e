/** The embedded backend's consumers: out-of-order acks kept across restarts, nak and ackWait redelivery, refusals. */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isMeshletError } from '@meshlet/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { BrokerBackend, Delivery } from '../src/broker/broker-backend.js'
import { createEmbeddedBackend } from '../src/index.js'

const broker = { namespace: 'shop', name: 'orders' }
const encoder = new TextEncoder()
const event = (i: number): Uint8Array => encoder.encode(JSON.stringify({ specversion: '1.0', type: 't', source: '/c', id: `e-${i}` }))
const idOf = (d: Delivery): string => (JSON.parse(new TextDecoder().decode(d.data)) as { id: string }).id
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

const dirs: string[] = []
const opened: BrokerBackend[] = []
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((b) => b.close()))
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function fresh(): Promise<{ dir: string; backend: BrokerBackend; reopen: () => Promise<BrokerBackend> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
  dirs.push(dir)
  const open = async (): Promise<BrokerBackend> => {
    const b = await createEmbeddedBackend({ dir })
    opened.push(b)
    return b
  }
  let backend = await open()
  return {
    dir,
    backend,
    reopen: async () => {
      await backend.close()
      backend = await open()
      return backend
    },
  }
}

async function codeOf(work: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof work === 'function' ? work() : work)
  } catch (err) {
    return isMeshletError(err) ? err.code : err
  }
  return 'resolved'
}

describe('embedded consumers', () => {
  it('keeps out-of-order acks across a restart: only the unacked events come back, each with deliveryCount 2', async () => {
    const { backend, reopen } = await fresh()
    let consumer = await backend.consumer(broker, 'odd-acks', { maxInFlight: 10 })
    await backend.append(broker, range(12).map(event))
    const first = await Promise.all(range(10).map(() => consumer.next()))
    expect(first.map(idOf)).toEqual(range(10).map((i) => `e-${i}`))
    // Ack the odd ones, newest first: the committed cursor stays at e-0, the acked set holds 5 above it.
    for (const d of first.filter((_, i) => i % 2 === 1).reverse()) await d.ack()
    expect(await consumer.lag()).toBe(12 - 5)
    await consumer.close()

    const again = await reopen()
    consumer = await again.consumer(broker, 'odd-acks', { maxInFlight: 10 })
    expect(await consumer.lag()).toBe(7)
    const redelivered = await Promise.all(range(7).map(() => consumer.next()))
    expect(redelivered.map(idOf)).toEqual(['e-0', 'e-2', 'e-4', 'e-6', 'e-8', 'e-10', 'e-11'])
    expect(redelivered.map((d) => d.deliveryCount)).toEqual([2, 2, 2, 2, 2, 1, 1])
    await Promise.all(redelivered.map((d) => d.ack()))
    expect(await consumer.lag()).toBe(0)
  })

  it('hands out other events while a nak(delay)ed one waits, then the nak’ed one with deliveryCount 2', async () => {
    const { backend } = await fresh()
    const consumer = await backend.consumer(broker, 'nak', { maxInFlight: 4 })
    await backend.append(broker, range(2).map(event))
    const e0 = await consumer.next()
    e0.nak(200)
    const e1 = await consumer.next()
    expect(idOf(e1)).toBe('e-1')
    await e1.ack()
    const back = await consumer.next()
    expect([idOf(back), back.deliveryCount]).toEqual(['e-0', 2])
    // A nak or ack of the old hand-out after the new one: the nak is stale and ignored, the ack counts.
    e0.nak()
    await back.ack()
    expect(await consumer.lag()).toBe(0)
  })

  it('hands out an unsettled delivery again after ackWait; a late ack of the first hand-out still settles it', async () => {
    const { backend } = await fresh()
    const consumer = await backend.consumer(broker, 'slow', { maxInFlight: 1, ackWait: 100 })
    await backend.append(broker, range(2).map(event))
    const first = await consumer.next()
    const again = await consumer.next()
    expect([again.seq, again.deliveryCount]).toEqual([first.seq, 2])
    await first.ack()
    const next = await consumer.next()
    expect(idOf(next)).toBe('e-1')
    await next.ack()
    await again.ack()
    expect(await consumer.lag()).toBe(0)
  })

  it('gives deliveries left pending by a closed consumer to the next one of the trigger, at once', async () => {
    const { backend } = await fresh()
    const first = await backend.consumer(broker, 'handover', { maxInFlight: 8 })
    await backend.append(broker, range(3).map(event))
    const held = await Promise.all(range(3).map(() => first.next()))
    await held[1]!.ack()
    await first.close()
    await expect(first.next()).rejects.toMatchObject({ code: 'MESHLET_ERR_CLOSED' })
    const second = await backend.consumer(broker, 'handover', { maxInFlight: 8 })
    const a = await second.next()
    const b = await second.next()
    expect([idOf(a), a.deliveryCount, idOf(b), b.deliveryCount]).toEqual(['e-0', 2, 'e-2', 2])
    await Promise.all([a.ack(), b.ack()])
    expect(await second.lag()).toBe(0)
  })

  it('waits for appends when caught up, without polling: next() resolves with the event appended after it was called', async () => {
    const { backend } = await fresh()
    const consumer = await backend.consumer(broker, 'waiting')
    const waiting = consumer.next()
    await backend.append(broker, [event(7)])
    const d = await waiting
    expect(idOf(d)).toBe('e-7')
    await d.ack()
  })

  it('stores one small cursor file per trigger', async () => {
    const { dir, backend } = await fresh()
    await (await backend.consumer(broker, 'a')).close()
    await (await backend.consumer(broker, 'b')).close()
    expect((await readdir(join(dir, 'shop', 'orders', 'consumers'))).sort()).toEqual(['a.cursor', 'b.cursor'])
    await backend.deleteConsumer(broker, 'a')
    expect(await readdir(join(dir, 'shop', 'orders', 'consumers'))).toEqual(['b.cursor'])
  })

  it('refuses bad names, oversized events, a second open consumer and use after close, with stable codes', async () => {
    const { backend } = await fresh()
    expect(await codeOf(backend.append({ namespace: '..', name: 'x' }, [event(0)]))).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(await codeOf(backend.append({ namespace: 'shop', name: 'a/b' }, [event(0)]))).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(await codeOf(backend.consumer(broker, '../../etc'))).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(await codeOf(backend.append(broker, [new Uint8Array(1024 * 1024 + 1)]))).toBe('MESHLET_ERR_EVENT_TOO_LARGE')
    expect(await codeOf(backend.append(broker, ['text' as unknown as Uint8Array]))).toBe('MESHLET_ERR_EVENT_INVALID')
    expect(await codeOf(backend.consumer(broker, 'c', { maxInFlight: 0 }))).toBe('MESHLET_ERR_CONFIG_INVALID')
    const consumer = await backend.consumer(broker, 'c')
    expect(await codeOf(backend.consumer(broker, 'c'))).toBe('MESHLET_ERR_CONFLICT')
    await backend.append(broker, [event(0)])
    const d = await consumer.next()
    await backend.close()
    expect(await codeOf(d.ack())).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(await codeOf(backend.append(broker, [event(1)]))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(await codeOf(backend.consumer(broker, 'c'))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    expect(await codeOf(() => createEmbeddedBackend({ dir: '/tmp/x', segmentBytes: 10 }))).toBe('MESHLET_ERR_CONFIG_INVALID')
  })
})
