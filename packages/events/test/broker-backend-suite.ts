/**
 * The behaviours of the BrokerBackend contract (src/broker/broker-backend.ts), written once and run
 * against every backend (broker-backends.test.ts). A factory opens a backend over a fresh directory;
 * `restart()` closes it and opens it again over the same state (for JetStream: the nats-server too).
 * Each test uses a broker of its own. Waits are on deliveries, never on the clock: a test that
 * expects a redelivery blocks in `next()` until it comes (the test timeout is the only bound).
 *
 * The restart tests use a short ackWait: the contract hands an unacked delivery out again "after a
 * restart (or after ackWait)", and JetStream does the latter for a message that was on its way to
 * the consumer as it closed (a pull consumer cannot take back what the server already sent).
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isMeshletError } from '@meshlet/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { BrokerBackend, BrokerRef, Delivery, TriggerConsumer } from '../src/broker/broker-backend.js'

export interface BrokerBackendUnderTest {
  readonly backend: BrokerBackend
  /** Closes the current backend, and reopens it over the same stored state. */
  restart(): Promise<BrokerBackend>
  /** Closes whatever is open and removes what the factory made (the suite removes `dir`). */
  cleanup(): Promise<void>
}

export type BrokerBackendFactory = (dir: string) => Promise<BrokerBackendUnderTest>

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A CloudEvent in JSON format, as the ingress stores it; its id is `${tag}-${i}`. */
export function cloudEvent(tag: string, i: number, padding = 0): Uint8Array {
  return encoder.encode(JSON.stringify({ specversion: '1.0', type: 'com.example.test', source: '/suite', id: `${tag}-${i}`, data: { i, pad: 'x'.repeat(padding) } }))
}

export function idOf(delivery: Delivery): string {
  return (JSON.parse(decoder.decode(delivery.data)) as { id: string }).id
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
const events = (tag: string, n: number): Uint8Array[] => range(n).map((i) => cloudEvent(tag, i))

async function codeOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work
  } catch (err) {
    return isMeshletError(err) ? err.code : err
  }
  return 'resolved'
}

export function describeBrokerBackend(name: string, factory: BrokerBackendFactory): void {
  describe(`BrokerBackend: ${name}`, () => {
    let dir: string
    let under: BrokerBackendUnderTest
    let backend: BrokerBackend
    let broker: BrokerRef
    const consumers: TriggerConsumer[] = []

    const open = async (trigger: string, options?: { maxInFlight?: number; ackWait?: number }): Promise<TriggerConsumer> => {
      const consumer = await backend.consumer(broker, trigger, options)
      consumers.push(consumer)
      return consumer
    }
    const restart = async (): Promise<void> => {
      await Promise.all(consumers.splice(0).map((c) => c.close()))
      backend = await under.restart()
    }

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'meshlet-broker-suite-'))
      under = await factory(dir)
      backend = under.backend
      broker = { namespace: 'suite', name: `b-${randomUUID().slice(0, 8)}` }
    })

    afterEach(async () => {
      await Promise.allSettled(consumers.splice(0).map((c) => c.close()))
      await under.cleanup()
      await rm(dir, { recursive: true, force: true })
    })

    it('hands appended events to one consumer in order (maxInFlight 1), with increasing seqs', async () => {
      const consumer = await open('in-order', { maxInFlight: 1 })
      await backend.append(broker, events('e', 10))
      let last = -Infinity
      for (const i of range(10)) {
        const delivery = await consumer.next()
        expect(idOf(delivery)).toBe(`e-${i}`)
        expect(delivery.deliveryCount).toBe(1)
        expect(delivery.seq).toBeGreaterThan(last)
        last = delivery.seq
        await delivery.ack()
      }
      expect(await consumer.lag()).toBe(0)
    })

    it('starts a new consumer at the broker’s end', async () => {
      await backend.append(broker, [cloudEvent('before', 0)])
      const consumer = await open('late')
      await backend.append(broker, [cloudEvent('after', 0)])
      const delivery = await consumer.next()
      expect(idOf(delivery)).toBe('after-0')
      await delivery.ack()
    })

    it('resumes after a restart without losing unacked deliveries', async () => {
      let consumer = await open('resume', { maxInFlight: 4, ackWait: 1000 })
      await backend.append(broker, events('r', 3))
      const first = await consumer.next()
      expect(idOf(first)).toBe('r-0')
      await first.ack()
      const second = await consumer.next()
      expect(idOf(second)).toBe('r-1')
      // r-1 is handed out and never settled; r-2 may be buffered: both must come back.
      await restart()
      consumer = await open('resume', { maxInFlight: 4, ackWait: 1000 })
      const seen = new Map<string, Delivery>()
      while (seen.size < 2) {
        const delivery = await consumer.next()
        expect(idOf(delivery)).not.toBe('r-0')
        seen.set(idOf(delivery), delivery)
        await delivery.ack()
      }
      expect([...seen.keys()].sort()).toEqual(['r-1', 'r-2'])
      expect(seen.get('r-1')?.deliveryCount).toBeGreaterThanOrEqual(2)
      expect(await consumer.lag()).toBe(0)
    })

    it('keeps an ack across a restart: the acked event is not handed out again', async () => {
      let consumer = await open('durable-ack', { maxInFlight: 1, ackWait: 1000 })
      await backend.append(broker, events('a', 2))
      const first = await consumer.next()
      expect(idOf(first)).toBe('a-0')
      await first.ack()
      await restart()
      consumer = await open('durable-ack', { maxInFlight: 1, ackWait: 1000 })
      // Were a-0's ack lost, a-0 (the lower seq) would come back first.
      const next = await consumer.next()
      expect(idOf(next)).toBe('a-1')
      await next.ack()
      // Nothing pending and nothing unacked: a-0's ack survived (it would count here otherwise).
      expect(await consumer.lag()).toBe(0)
    })

    it('hands a nak(delay)ed event out again with deliveryCount 2', async () => {
      const consumer = await open('nak', { maxInFlight: 1 })
      await backend.append(broker, [cloudEvent('n', 0)])
      const first = await consumer.next()
      first.nak(50)
      const again = await consumer.next()
      expect(again.seq).toBe(first.seq)
      expect(idOf(again)).toBe('n-0')
      expect(again.deliveryCount).toBe(2)
      await again.ack()
      expect(await consumer.lag()).toBe(0)
    })

    it('hands an unsettled delivery out again after ackWait', async () => {
      const consumer = await open('ack-wait', { maxInFlight: 1, ackWait: 300 })
      await backend.append(broker, [cloudEvent('w', 0)])
      const first = await consumer.next()
      expect(first.deliveryCount).toBe(1)
      const again = await consumer.next()
      expect(again.seq).toBe(first.seq)
      expect(again.deliveryCount).toBe(2)
      await again.ack()
    })

    it('gives every event to each of two triggers', async () => {
      const a = await open('trigger-a', { maxInFlight: 1 })
      const b = await open('trigger-b', { maxInFlight: 1 })
      await backend.append(broker, events('t', 5))
      for (const consumer of [a, b]) {
        for (const i of range(5)) {
          const delivery = await consumer.next()
          expect(idOf(delivery)).toBe(`t-${i}`)
          await delivery.ack()
        }
      }
    })

    it('forgets a deleted consumer’s position: recreated, it starts at the end', async () => {
      const consumer = await open('deleted', { maxInFlight: 1 })
      await backend.append(broker, [cloudEvent('old', 0)])
      expect(await consumer.lag()).toBe(1)
      await consumer.close()
      await backend.deleteConsumer(broker, 'deleted')
      const recreated = await open('deleted', { maxInFlight: 1 })
      expect(await recreated.lag()).toBe(0)
      await backend.append(broker, [cloudEvent('new', 0)])
      const delivery = await recreated.next()
      expect(idOf(delivery)).toBe('new-0')
      await delivery.ack()
    })

    it('reports stats: events, bytes and the next seq', async () => {
      const before = await backend.stats(broker)
      expect(before.events).toBe(0)
      const consumer = await open('stats', { maxInFlight: 1 })
      await backend.append(broker, events('s', 3))
      const after = await backend.stats(broker)
      expect(after.events).toBe(3)
      expect(after.bytes).toBeGreaterThan(0)
      expect(after.nextSeq).toBe(before.nextSeq + 3)
      const delivery = await consumer.next()
      expect(delivery.seq).toBe(before.nextSeq)
      await delivery.ack()
    })

    it('removes a deleted broker’s events', async () => {
      await open('gone', { maxInFlight: 1 })
      await backend.append(broker, events('g', 2))
      await Promise.all(consumers.splice(0).map((c) => c.close()))
      await backend.deleteBroker(broker)
      expect((await backend.stats(broker)).events).toBe(0)
    })

    it('rejects appends after close with BROKER_UNAVAILABLE', async () => {
      await backend.append(broker, [cloudEvent('c', 0)])
      await Promise.all(consumers.splice(0).map((c) => c.close()))
      await backend.close()
      expect(await codeOf(backend.append(broker, [cloudEvent('c', 1)]))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
    })

    it('rejects next() with an AbortError when its signal aborts, and loses no event to it', async () => {
      const consumer = await open('abort', { maxInFlight: 1 })
      const controller = new AbortController()
      const waiting = consumer.next(controller.signal)
      controller.abort()
      await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
      await expect(consumer.next(AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' })
      await backend.append(broker, [cloudEvent('x', 0)])
      const delivery = await consumer.next()
      expect(idOf(delivery)).toBe('x-0')
      await delivery.ack()
    })

    it('delivers a 20,000-event backlog with maxInFlight 256 and loses none', { timeout: 180_000 }, async () => {
      const total = 20_000
      const batch = 500
      const consumer = await open('backlog', { maxInFlight: 256 })
      for (let start = 0; start < total; start += batch) {
        await backend.append(broker, range(batch).map((i) => cloudEvent('big', start + i, 200)))
      }
      const seen = new Set<string>()
      let acks: Promise<void>[] = []
      while (seen.size < total) {
        const delivery = await consumer.next()
        seen.add(idOf(delivery))
        acks.push(delivery.ack())
        // Settle in windows so acks run alongside, as a dispatcher's would.
        if (acks.length >= 128) {
          await Promise.all(acks)
          acks = []
        }
      }
      await Promise.all(acks)
      expect(seen.size).toBe(total)
      expect(await consumer.lag()).toBe(0)
    })
  })
}
