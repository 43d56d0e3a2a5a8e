/**
 * At-least-once across a crash: nats-server is SIGKILLed while appends are in flight. Every append
 * that resolved must be consumable after the restart (0 acknowledged events lost); every append
 * that did not resolve must have rejected with BROKER_UNAVAILABLE (some of those may have been
 * stored anyway, their ack lost with the socket: a duplicate, which the contract allows).
 */
import { isMeshletError } from '@meshlet/core'
import { expect, it } from 'vitest'
import { createJetStreamBackend } from '../src/broker/jetstream/jetstream-backend.js'
import { cloudEvent, idOf } from './broker-backend-suite.js'
import { useNatsServer } from './nats-server.js'

const nats = useNatsServer()

it('keeps every acknowledged append across a nats-server SIGKILL mid-publish', { timeout: 120_000 }, async () => {
  const backend = await createJetStreamBackend({ servers: nats().url, streamPrefix: 'crash' })
  const broker = { namespace: 'crash', name: 'orders' }
  // The trigger exists before the first append (so it gets every event); nothing is in flight to it.
  await (await backend.consumer(broker, 'reader')).close()

  const acknowledged = new Set<string>()
  const rejections: unknown[] = []
  const killAfter = 3000
  let batches = 0
  let killed: Promise<void> | undefined
  const publisher = async (): Promise<void> => {
    for (;;) {
      const batch = batches++
      const events = Array.from({ length: 20 }, (_, i) => cloudEvent(`b${batch}`, i))
      try {
        await backend.append(broker, events)
      } catch (err) {
        rejections.push(err)
        return
      }
      for (let i = 0; i < events.length; i++) acknowledged.add(`b${batch}-${i}`)
      // The kill lands while the other publishers' appends are in flight.
      if (killed === undefined && acknowledged.size >= killAfter) killed = nats().kill('SIGKILL')
    }
  }
  await Promise.all(Array.from({ length: 8 }, publisher))
  await killed

  expect(rejections.length).toBeGreaterThan(0)
  for (const err of rejections) expect(isMeshletError(err, 'MESHLET_ERR_BROKER_UNAVAILABLE'), String(err)).toBe(true)

  await nats().restart()
  await backend.whenConnected()
  const marker = cloudEvent('marker', 0)
  await backend.append(broker, [marker])
  expect((await backend.stats(broker)).events).toBeGreaterThan(acknowledged.size)

  const consumer = await backend.consumer(broker, 'reader', { maxInFlight: 256 })
  const seen = new Set<string>()
  let markerSeen = false
  for (;;) {
    const delivery = await consumer.next()
    const id = idOf(delivery)
    seen.add(id)
    await delivery.ack()
    if (id === 'marker-0') markerSeen = true
    // Past the marker with nothing pending or unacked: every stored event has been seen.
    if (markerSeen && (await consumer.lag()) === 0) break
  }
  const lost = [...acknowledged].filter((id) => !seen.has(id))
  expect(lost).toEqual([])
  await consumer.close()
  await backend.close()
})
