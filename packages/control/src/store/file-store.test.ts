import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Resource, WatchEvent } from '@meshlet/core'
import type { Logger } from '../logger.js'
import { FileStore, SNAPSHOT_FILE, WAL_FILE } from './file-store.js'
import { decodeRecord, encodeRecord, WAL_MAGIC } from './record-codec.js'

let dir: string
let warnings: string[]
const log: Logger = { info: () => {}, warn: (m) => warnings.push(m), error: () => {} }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-store-'))
  warnings = []
})
afterEach(() => rm(dir, { recursive: true, force: true }))

function event(rv: number, name = `p${rv}`): WatchEvent {
  const object: Resource = { apiVersion: 'meshlet.dev/v1', kind: 'ServicePolicy', metadata: { name, namespace: 'default', resourceVersion: rv }, spec: { service: name } }
  return { type: 'ADDED', resourceVersion: rv, object }
}

async function writeEvents(n: number): Promise<number[]> {
  const { store } = await FileStore.open(dir, log)
  const offsets: number[] = []
  for (let rv = 1; rv <= n; rv++) {
    offsets.push(store.walBytes)
    await store.append([JSON.stringify(event(rv))])
  }
  await store.close()
  return offsets
}

describe('record codec', () => {
  it('round-trips and checks length and payload', () => {
    const buf = encodeRecord({ a: 1 })
    expect(decodeRecord(buf, 0)).toEqual({ ok: true, value: { a: 1 }, next: buf.length })
    const flipped = Buffer.from(buf)
    flipped[10]! ^= 1
    expect(decodeRecord(flipped, 0)).toEqual({ ok: false, reason: 'checksum mismatch' })
    const longer = Buffer.from(buf)
    longer.writeUInt32LE(buf.length, 0)
    expect(decodeRecord(longer, 0)).toMatchObject({ ok: false, reason: expect.stringContaining('claims') })
  })
})

describe('FileStore', () => {
  it('replays every appended event after a reopen', async () => {
    await writeEvents(5)
    const { store, recovered } = await FileStore.open(dir, log)
    expect(recovered.events.map((e) => e.resourceVersion)).toEqual([1, 2, 3, 4, 5])
    expect(recovered.snapshot).toBeUndefined()
    await store.close()
    expect(warnings).toEqual([])
  })

  it('truncates a record torn by a crash at the end of the log, with a warning', async () => {
    await writeEvents(3)
    const torn = encodeRecord(event(4)).subarray(0, 20)
    await appendFile(join(dir, WAL_FILE), torn)
    const size = (await stat(join(dir, WAL_FILE))).size
    const { store, recovered } = await FileStore.open(dir, log)
    expect(recovered.events.map((e) => e.resourceVersion)).toEqual([1, 2, 3])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/last record \(byte offset \d+, 20 bytes\) is incomplete/)
    expect((await stat(join(dir, WAL_FILE))).size).toBe(size - 20)
    await store.append([JSON.stringify(event(4))])
    await store.close()
    const again = await FileStore.open(dir, log)
    expect(again.recovered.events.map((e) => e.resourceVersion)).toEqual([1, 2, 3, 4])
    await again.store.close()
  })

  it('treats a zero-filled tail (size updated, data lost) as torn', async () => {
    await writeEvents(2)
    await appendFile(join(dir, WAL_FILE), Buffer.alloc(300))
    const { store, recovered } = await FileStore.open(dir, log)
    expect(recovered.events).toHaveLength(2)
    expect(warnings[0]).toContain('incomplete')
    await store.close()
  })

  it('refuses to start on damage in the middle, naming the file and byte offset', async () => {
    const offsets = await writeEvents(4)
    const path = join(dir, WAL_FILE)
    const buf = await readFile(path)
    buf[offsets[1]! + 12]! ^= 0xff
    await writeFile(path, buf)
    const err = await FileStore.open(dir, log).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'MESHLET_ERR_STORE_CORRUPT' })
    expect((err as Error).message).toContain(`${path} is corrupt at byte offset ${offsets[1]}`)
    expect((err as Error).message).toContain('checksum mismatch')
    expect(await readFile(path)).toEqual(buf)
  })

  it('refuses a file that is not a meshlet log', async () => {
    await writeFile(join(dir, WAL_FILE), 'hello, this is not a log at all')
    await expect(FileStore.open(dir, log)).rejects.toThrow(/corrupt at byte offset 0: it does not start with the meshlet log header/)
  })

  it('compacts into a snapshot and an empty log, and replays only what follows', async () => {
    const { store } = await FileStore.open(dir, log)
    await store.append([JSON.stringify(event(1)), JSON.stringify(event(2))])
    await store.compact({ resourceVersion: 2, resources: [event(1).object as Resource, event(2).object as Resource], instances: [] })
    expect(store.walBytes).toBe(WAL_MAGIC.length)
    await store.append([JSON.stringify(event(3))])
    await store.close()
    const { store: s2, recovered } = await FileStore.open(dir, log)
    expect(recovered.snapshot?.resourceVersion).toBe(2)
    expect(recovered.snapshot?.resources).toHaveLength(2)
    expect(recovered.events.map((e) => e.resourceVersion)).toEqual([3])
    await s2.close()
  })

  it('skips log records already in the snapshot (a crash between the two renames)', async () => {
    await writeEvents(3)
    const { store } = await FileStore.open(dir, log)
    // Only the snapshot is written: as if the process died before the log was replaced.
    const snap = Buffer.concat([Buffer.from('MSHSNP01'), encodeRecord({ resourceVersion: 2, resources: [event(1).object, event(2).object], instances: [] })])
    await writeFile(join(dir, SNAPSHOT_FILE), snap)
    await store.close()
    const { store: s2, recovered } = await FileStore.open(dir, log)
    expect(recovered.events.map((e) => e.resourceVersion)).toEqual([3])
    await s2.close()
  })

  it('refuses a damaged snapshot', async () => {
    const { store } = await FileStore.open(dir, log)
    await store.compact({ resourceVersion: 0, resources: [], instances: [] })
    await store.close()
    const path = join(dir, SNAPSHOT_FILE)
    const buf = await readFile(path)
    buf[buf.length - 2]! ^= 1
    await writeFile(path, buf)
    await expect(FileStore.open(dir, log)).rejects.toThrow(new RegExp(`${path} is corrupt at byte offset 8: checksum mismatch`))
  })

  it('recovers the whole records before any cut of the log, never failing (every crash point)', async () => {
    const offsets = await writeEvents(4)
    const full = await readFile(join(dir, WAL_FILE))
    const ends = [...offsets.slice(1), full.length]
    for (let cut = WAL_MAGIC.length; cut <= full.length; cut += 3) {
      const d = await mkdtemp(join(tmpdir(), 'meshlet-cut-'))
      await writeFile(join(d, WAL_FILE), full.subarray(0, cut))
      const { store, recovered } = await FileStore.open(d, log)
      expect(recovered.events.length, `cut at ${cut}`).toBe(ends.filter((e) => e <= cut).length)
      await store.close()
      await rm(d, { recursive: true, force: true })
    }
  })

  it('refuses any flipped byte before the last record, and truncates the last record when it is the damaged one', async () => {
    const offsets = await writeEvents(3)
    const full = await readFile(join(dir, WAL_FILE))
    for (let at = 0; at < full.length; at++) {
      const d = await mkdtemp(join(tmpdir(), 'meshlet-flip-'))
      const buf = Buffer.from(full)
      buf[at]! ^= 0x20
      await writeFile(join(d, WAL_FILE), buf)
      const result = await FileStore.open(d, log).catch((e: unknown) => e as Error)
      if (at < offsets[2]!) expect(result, `byte ${at}`).toMatchObject({ code: 'MESHLET_ERR_STORE_CORRUPT' })
      else {
        expect(result, `byte ${at}`).not.toBeInstanceOf(Error)
        const { store, recovered } = result as Awaited<ReturnType<typeof FileStore.open>>
        expect(recovered.events.map((e) => e.resourceVersion)).toEqual([1, 2])
        await store.close()
      }
      await rm(d, { recursive: true, force: true })
    }
  })
})
