/**
 * Bounded memory: a consumer reads a 200,000-event backlog (about 60 MB on disk) with the heap
 * staying flat. fsync is off in this test only: durability is not what it measures.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterAll, describe, expect, it } from 'vitest'
import { createEmbeddedBackend } from '../src/index.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const broker = { namespace: 'shop', name: 'backlog' }
const TOTAL = 200_000
const payload = 'x'.repeat(220)
const encoder = new TextEncoder()
const event = (i: number): Uint8Array => encoder.encode(JSON.stringify({ specversion: '1.0', type: 't', source: '/m', id: `e-${i}`, data: payload }))

let dir = ''
afterAll(() => rm(dir, { recursive: true, force: true }))

function heapMiB(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 2 ** 20
}

describe('embedded backlog memory', () => {
  it('reads a 200,000-event backlog with a flat heap (never the whole backlog in memory)', { timeout: 240_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
    const backend = await createEmbeddedBackend({ dir, fsync: false, segmentBytes: 8 * 1024 * 1024 })
    const consumer = await backend.consumer(broker, 'reader', { maxInFlight: 256 })
    for (let start = 0; start < TOTAL; start += 1000) {
      await backend.append(broker, Array.from({ length: 1000 }, (_, i) => event(start + i)))
    }
    const stats = await backend.stats(broker)
    expect(stats.events).toBe(TOTAL)
    expect(stats.bytes).toBeGreaterThan(TOTAL * 250)
    const baseline = heapMiB()
    let peak = 0
    let acks: Promise<void>[] = []
    for (let n = 1; n <= TOTAL; n++) {
      const d = await consumer.next()
      acks.push(d.ack())
      if (acks.length === 128) {
        await Promise.all(acks)
        acks = []
      }
      if (n % 20_000 === 0) peak = Math.max(peak, heapMiB() - baseline)
    }
    await Promise.all(acks)
    expect(await consumer.lag()).toBe(0)
    // The backlog is ~55 MiB of payload alone; a generous bound far below it.
    expect(peak).toBeLessThan(16)
    console.warn(`embedded backlog: heap peak ${peak.toFixed(1)} MiB over a baseline of ${baseline.toFixed(1)} MiB, ${(stats.bytes / 2 ** 20).toFixed(0)} MiB on disk`)
    await consumer.close()
    await backend.close()
  })
})
