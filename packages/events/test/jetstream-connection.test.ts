/** Losing the NATS connection: appends fail fast with BROKER_UNAVAILABLE, and everything recovers with the server. */
import { isMeshletError } from '@meshlet/core'
import { expect, it } from 'vitest'
import { createJetStreamBackend } from '../src/broker/jetstream/jetstream-backend.js'
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

it('rejects appends with BROKER_UNAVAILABLE while the server is down, and recovers when it is back', async () => {
  const backend = await createJetStreamBackend({ servers: nats().url, streamPrefix: 'conn' })
  const broker = { namespace: 'conn', name: 'b' }
  const consumer = await backend.consumer(broker, 'reader', { maxInFlight: 1 })
  await backend.append(broker, [cloudEvent('up', 0)])
  const first = await consumer.next()
  expect(idOf(first)).toBe('up-0')
  await first.ack()

  // A next() waiting across the outage gets the first event appended after it.
  const waiting = consumer.next()
  await nats().stop()
  expect(await codeOf(backend.append(broker, [cloudEvent('down', 0)]))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
  expect(backend.connected).toBe(false)
  expect(await codeOf(backend.stats(broker))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')

  await nats().restart()
  await backend.whenConnected()
  expect(backend.connected).toBe(true)
  await backend.append(broker, [cloudEvent('back', 0)])
  const delivery = await waiting
  // down-0 may have reached the stream before the socket closed (its ack did not): allowed, it is a duplicate-safe resend.
  const ids = [idOf(delivery)]
  await delivery.ack()
  while (!ids.includes('back-0')) {
    const next = await consumer.next()
    ids.push(idOf(next))
    await next.ack()
  }
  expect(ids.filter((id) => id !== 'down-0')).toEqual(['back-0'])
  await consumer.close()
  await backend.close()
})

it('rejects creating a backend when no server answers, with BROKER_UNAVAILABLE', async () => {
  const server = nats()
  await server.stop()
  try {
    expect(await codeOf(createJetStreamBackend({ servers: server.url }))).toBe('MESHLET_ERR_BROKER_UNAVAILABLE')
  } finally {
    await server.restart()
  }
})
