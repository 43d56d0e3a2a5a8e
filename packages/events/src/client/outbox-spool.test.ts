import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { OutboxSpool } from './outbox-spool.js'

const dirs: string[] = []
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})
async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshlet-spool-'))
  dirs.push(d)
  return d
}
const text = (records: Uint8Array[]) => records.map((r) => Buffer.from(r).toString())

describe('OutboxSpool', () => {
  it('hands records out in append order across groups and segments, and forgets acked ones on reopen', async () => {
    const d = await dir()
    const spool = await OutboxSpool.open(d, { maxBytes: 1 << 20, segmentBytes: 64 })
    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.append([Buffer.from(`r${i}`)])))
    expect(spool.depth).toBe(20)
    expect(text(spool.peek(3, 1 << 20))).toEqual(['r0', 'r1', 'r2'])
    await spool.ack(12)
    expect(text(spool.peek(100, 1 << 20))).toEqual(Array.from({ length: 8 }, (_, i) => `r${i + 12}`))
    await spool.close()
    const again = await OutboxSpool.open(d, { maxBytes: 1 << 20, segmentBytes: 64 })
    expect(text(again.peek(100, 1 << 20))).toEqual(Array.from({ length: 8 }, (_, i) => `r${i + 12}`))
    await again.ack(8)
    expect(again.depth).toBe(0)
    expect(again.bytes).toBe(0)
    await again.close()
    // Fully acked segments are gone.
    expect((await readdir(d)).filter((f) => f.startsWith('segment-'))).toHaveLength(0)
  })

  it('drops a record torn by a crash and truncates its file there', async () => {
    const d = await dir()
    const spool = await OutboxSpool.open(d, { maxBytes: 1 << 20 })
    await spool.append([Buffer.from('kept-1'), Buffer.from('kept-2')])
    await spool.close()
    const [segment] = (await readdir(d)).filter((f) => f.startsWith('segment-'))
    const intact = (await stat(join(d, segment!))).size
    await appendFile(join(d, segment!), Buffer.from([0, 0, 0, 50, 1, 2, 3, 4, 9, 9])) // a header promising 50 bytes, then 2
    const again = await OutboxSpool.open(d, { maxBytes: 1 << 20 })
    expect(text(again.peek(10, 1 << 20))).toEqual(['kept-1', 'kept-2'])
    expect((await stat(join(d, segment!))).size).toBe(intact)
    await again.close()
  })

  it('refuses an append that does not fit, writing nothing of it', async () => {
    const spool = await OutboxSpool.open(await dir(), { maxBytes: 40 })
    await spool.append([Buffer.alloc(20)])
    await expect(spool.append([Buffer.alloc(20)])).rejects.toMatchObject({ code: 'MESHLET_ERR_BROKER_UNAVAILABLE', message: expect.stringMatching(/is full \(28 of 40 bytes spooled, 1 events\)/) })
    expect(spool.depth).toBe(1)
    await spool.close()
  })
})
