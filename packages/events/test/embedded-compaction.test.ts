/** Compaction and retention: only sealed segments every trigger is past go, and stats follow. */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { BrokerBackend, TriggerConsumer } from '../src/broker/broker-backend.js'
import { createEmbeddedBackend, type EmbeddedBackendOptions } from '../src/index.js'

const broker = { namespace: 'shop', name: 'orders' }
const encoder = new TextEncoder()
const event = (i: number): Uint8Array => encoder.encode(JSON.stringify({ specversion: '1.0', type: 't', source: '/k', id: `e-${i}`, data: 'x'.repeat(150) }))
const idOf = (data: Uint8Array): string => (JSON.parse(new TextDecoder().decode(data)) as { id: string }).id

const dirs: string[] = []
const opened: BrokerBackend[] = []
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((b) => b.close()))
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function open(dir: string, options: Partial<EmbeddedBackendOptions> = {}): Promise<BrokerBackend> {
  const b = await createEmbeddedBackend({ dir, segmentBytes: 2048, ...options })
  opened.push(b)
  return b
}

/** The seq ranges [first, next) of the segment files on disk. */
async function segmentRanges(dir: string, nextSeq: number): Promise<[number, number][]> {
  const firsts = (await readdir(join(dir, 'shop', 'orders', 'segments'))).map((n) => Number(n.slice(0, 20))).sort((a, b) => a - b)
  return firsts.map((first, i) => [first, firsts[i + 1] ?? nextSeq])
}

async function ackN(consumer: TriggerConsumer, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const d = await consumer.next()
    ids.push(idOf(d.data))
    await d.ack()
  }
  return ids
}

describe('embedded compaction', () => {
  it('deletes the sealed segments wholly below every trigger’s cursor, and only those', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
    dirs.push(dir)
    let backend = await open(dir)
    const fast = await backend.consumer(broker, 'fast')
    const slow = await backend.consumer(broker, 'slow')
    for (let i = 0; i < 100; i++) await backend.append(broker, [event(i)])
    const all = await segmentRanges(dir, 101)
    expect(all.length).toBeGreaterThan(5)
    await ackN(fast, 100)
    await ackN(slow, 40)
    // close() waits for compaction to finish: what is on disk afterwards is its result.
    await fast.close()
    await slow.close()
    await backend.close()
    const kept = await segmentRanges(dir, 101)
    // The slow trigger's cursor is 41: every deleted segment ended at or below it, the first kept one holds seq 41.
    const deleted = all.filter(([first]) => !kept.some(([f]) => f === first))
    expect(deleted.length).toBeGreaterThan(0)
    for (const [, next] of deleted) expect(next).toBeLessThanOrEqual(41)
    expect(kept[0]![0]).toBeLessThanOrEqual(41)
    expect(kept[0]![1]).toBeGreaterThan(41)

    backend = await open(dir)
    const stats = await backend.stats(broker)
    expect(stats.nextSeq).toBe(101)
    expect(stats.events).toBe(101 - kept[0]![0])
    // The slow trigger still gets every event it has not acked.
    const rest = await ackN(await backend.consumer(broker, 'slow'), 60)
    expect(rest).toEqual(Array.from({ length: 60 }, (_, i) => `e-${40 + i}`))
    await backend.close()
    // Everything is consumed now: only the segment being written to remains.
    expect((await segmentRanges(dir, 101)).length).toBe(1)
  })

  it('keeps consumed segments for the retention period', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
    dirs.push(dir)
    const backend = await open(dir, { retention: 3_600_000 })
    const consumer = await backend.consumer(broker, 'all')
    for (let i = 0; i < 50; i++) await backend.append(broker, [event(i)])
    await ackN(consumer, 50)
    await consumer.close()
    await backend.close()
    const ranges = await segmentRanges(dir, 51)
    expect(ranges[0]![0]).toBe(1)
    expect(ranges.length).toBeGreaterThan(2)
  })

  it('with no trigger on the broker, drops sealed segments as they are sealed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
    dirs.push(dir)
    const backend = await open(dir)
    for (let i = 0; i < 50; i++) await backend.append(broker, [event(i)])
    await backend.close()
    expect((await segmentRanges(dir, 51)).length).toBe(1)
  })
})
