/** The embedded log on real files: rotation, a torn tail cut off, damage refused with file and offset. */
import { appendFile, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isMeshletError, type MeshletError } from '@meshlet/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { BrokerBackend, TriggerConsumer } from '../src/broker/broker-backend.js'
import { encodeRecord } from '../src/broker/embedded/record-format.js'
import { createEmbeddedBackend } from '../src/index.js'

const broker = { namespace: 'shop', name: 'orders' }
const encoder = new TextEncoder()
const event = (i: number): Uint8Array => encoder.encode(JSON.stringify({ specversion: '1.0', type: 't', source: '/r', id: `e-${i}`, data: 'x'.repeat(100) }))
const idOf = (data: Uint8Array): string => (JSON.parse(new TextDecoder().decode(data)) as { id: string }).id

const dirs: string[] = []
const opened: BrokerBackend[] = []
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((b) => b.close()))
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function backendIn(dir: string, warnings: string[] = []): Promise<BrokerBackend> {
  const backend = await createEmbeddedBackend({ dir, segmentBytes: 4096, warn: (m) => warnings.push(m) })
  opened.push(backend)
  return backend
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-'))
  dirs.push(dir)
  return dir
}

const segmentsDir = (dir: string): string => join(dir, 'shop', 'orders', 'segments')
async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(segmentsDir(dir))).filter((n) => n.endsWith('.seg')).sort()
}

async function drain(consumer: TriggerConsumer, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const d = await consumer.next()
    ids.push(idOf(d.data))
    await d.ack()
  }
  return ids
}

async function errorOf(work: Promise<unknown>): Promise<MeshletError> {
  try {
    await work
  } catch (err) {
    if (isMeshletError(err)) return err
    throw err
  }
  throw new Error('expected a MeshletError, but it resolved')
}

/** Appends 100 events (one append each, so the 4 KiB segments rotate) with a consumer from seq 1. */
async function filled(dir: string): Promise<void> {
  const backend = await backendIn(dir)
  await (await backend.consumer(broker, 'reader')).close()
  for (let i = 0; i < 100; i++) await backend.append(broker, [event(i)])
  await backend.close()
}

describe('embedded log files', () => {
  it('rotates segments at segmentBytes, names them by first seq, and reads across them in order', async () => {
    const dir = await tempDir()
    await filled(dir)
    const files = await segmentFiles(dir)
    expect(files.length).toBeGreaterThan(3)
    expect(files[0]).toBe('00000000000000000001.seg')
    for (const f of files.slice(0, -1)) expect((await stat(join(segmentsDir(dir), f))).size).toBeLessThanOrEqual(4096)
    const backend = await backendIn(dir)
    expect(await backend.stats(broker)).toMatchObject({ events: 100, nextSeq: 101 })
    const consumer = await backend.consumer(broker, 'reader')
    expect(await drain(consumer, 100)).toEqual(Array.from({ length: 100 }, (_, i) => `e-${i}`))
  })

  it('cuts a torn record off the end of the last segment, says so, and appends after it', async () => {
    const dir = await tempDir()
    await filled(dir)
    const last = join(segmentsDir(dir), (await segmentFiles(dir)).at(-1)!)
    const sizeBefore = (await stat(last)).size
    // The first 40 bytes of the record seq 101 would have been: a write cut short by a crash.
    await appendFile(last, encodeRecord(101, event(100)).subarray(0, 40))
    const warnings: string[] = []
    const backend = await backendIn(dir, warnings)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain(`dropped 40 bytes at byte ${sizeBefore} of ${last}`)
    expect((await stat(last)).size).toBe(sizeBefore)
    await backend.append(broker, [event(100)])
    expect((await backend.stats(broker)).nextSeq).toBe(102)
    const consumer = await backend.consumer(broker, 'reader')
    expect((await drain(consumer, 101)).at(-1)).toBe('e-100')
  })

  it('cuts off garbage after the last record too (a torn header)', async () => {
    const dir = await tempDir()
    await filled(dir)
    const last = join(segmentsDir(dir), (await segmentFiles(dir)).at(-1)!)
    await appendFile(last, Buffer.from([0xff, 0x00, 0x13]))
    const warnings: string[] = []
    const backend = await backendIn(dir, warnings)
    expect(warnings[0]).toContain('dropped 3 bytes')
    expect((await backend.stats(broker)).events).toBe(100)
  })

  it('refuses to open a last segment damaged in the middle (valid records follow), naming file and offset', async () => {
    const dir = await tempDir()
    await filled(dir)
    const last = join(segmentsDir(dir), (await segmentFiles(dir)).at(-1)!)
    await flipByte(last, 8 + 16 + 5) // in the payload of the segment's first record
    const err = await errorOf(createEmbeddedBackend({ dir, segmentBytes: 4096 }))
    expect(err.code).toBe('MESHLET_ERR_STORE_CORRUPT')
    expect(err.message).toContain(`${last} is damaged at byte 8`)
    expect(err.details).toMatchObject({ file: last, offset: 8 })
  })

  it('fails reads of a record damaged in a sealed segment with MESHLET_ERR_STORE_CORRUPT, after the records before it', async () => {
    const dir = await tempDir()
    await filled(dir)
    const first = join(segmentsDir(dir), (await segmentFiles(dir))[0]!)
    // Records of these events are 16 + 140-odd bytes; byte 600 is in the fourth or fifth record.
    await flipByte(first, 600)
    const backend = await backendIn(dir)
    const consumer = await backend.consumer(broker, 'reader')
    const delivered: string[] = []
    const err = await errorOf((async () => {
      for (;;) {
        const d = await consumer.next()
        delivered.push(idOf(d.data))
        await d.ack()
      }
    })())
    expect(err.code).toBe('MESHLET_ERR_STORE_CORRUPT')
    expect(err.details).toMatchObject({ file: first })
    const offset = (err.details as { offset: number }).offset
    expect(offset).toBeLessThanOrEqual(600)
    expect(offset).toBeGreaterThan(600 - 200)
    expect(err.message).toContain(`${first} is damaged at byte ${offset}: checksum mismatch`)
    expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => `e-${i}`))
    expect(delivered.length).toBeGreaterThan(2)
  })
})

async function flipByte(path: string, at: number): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, at)
    byte[0] = byte[0]! ^ 0xff
    await handle.write(byte, 0, 1, at)
  } finally {
    await handle.close()
  }
}
