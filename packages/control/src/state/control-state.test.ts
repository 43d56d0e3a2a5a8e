import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { builtinResourceRegistry, type InstanceSpec, type Resource, type WatchEvent } from '@meshlet/core'
import { silentLogger } from '../logger.js'
import { FileStore } from '../store/file-store.js'
import { ControlState, type ControlStateOptions } from './control-state.js'

let dir: string
let clock: number
const open = (o: Partial<ControlStateOptions> = {}) => ControlState.open(dir, { log: silentLogger, now: () => clock, ...o })
const policy = (name: string, timeout = '1s'): Resource => builtinResourceRegistry().validate({ apiVersion: 'meshlet.dev/v1', kind: 'ServicePolicy', metadata: { name }, spec: { service: name, timeout } })
const spec: InstanceSpec = { service: 'payments', address: '127.0.0.1', port: 3001, protocols: ['http'], metadata: {}, ttl: 1000 }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-state-'))
  clock = 1_000_000
})
afterEach(() => rm(dir, { recursive: true, force: true }))

describe('ControlState', () => {
  it('gives each change the next resourceVersion and keeps an identical put unchanged', async () => {
    const s = await open()
    expect((await s.put(policy('a'))).object.metadata.resourceVersion).toBe(1)
    expect((await s.put(policy('b'))).object.metadata.resourceVersion).toBe(2)
    const same = await s.put(policy('a'))
    expect(same.result).toBe('unchanged')
    expect(same.object.metadata.resourceVersion).toBe(1)
    const changed = await s.put(policy('a', '2s'))
    expect(changed).toMatchObject({ result: 'configured', object: { metadata: { resourceVersion: 3 } } })
    expect(changed.object.metadata.creationTimestamp).toBe(same.object.metadata.creationTimestamp)
    expect(s.resourceVersion).toBe(3)
    await s.close()
  })

  it('serializes concurrent writers: a precondition sees writes still being committed', async () => {
    const s = await open()
    await s.put(policy('a'))
    const results = await Promise.allSettled([s.put(policy('a', '2s'), { precondition: 1 }), s.put(policy('a', '3s'), { precondition: 1 })])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected'])
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'MESHLET_ERR_CONFLICT', status: 409 })
    expect(((results[1] as PromiseRejectedResult).reason as Error).message).toContain('expected resourceVersion 1, but it is at resourceVersion 2')
    await expect(s.put(policy('new'), { precondition: 5 })).rejects.toThrow(/it does not exist/)
    await expect(s.put(policy('a'), { precondition: 0 })).rejects.toThrow(/expected it not to exist/)
    await s.close()
  })

  it('publishes durable changes in order and restores everything after a restart', async () => {
    const s = await open()
    const seen: WatchEvent[] = []
    s.subscribe((e) => seen.push(e))
    await Promise.all([s.put(policy('a')), s.put(policy('b')), s.put(policy('c'))])
    await s.delete('ServicePolicy', 'default', 'b')
    const inst = await s.register('shop', spec)
    expect(seen.map((e) => [e.type, e.resourceVersion])).toEqual([['ADDED', 1], ['ADDED', 2], ['ADDED', 3], ['DELETED', 4], ['ADDED', 5]])
    await s.close()

    clock += 60_000
    const r = await open()
    expect(r.resourceVersion).toBe(5)
    expect(r.list('ServicePolicy').map((x) => [x.metadata.name, x.metadata.resourceVersion])).toEqual([['a', 1], ['c', 3]])
    // Leases restart on recovery rather than expiring for the endpoint's own downtime.
    expect(r.instance(inst.metadata.name)?.status.expiresAt).toBe(new Date(clock + 1000).toISOString())
    expect(r.eventsSince(3)).toHaveLength(2)
    expect((await r.put(policy('d'))).object.metadata.resourceVersion).toBe(6)
    await r.close()
  })

  it('keeps resourceVersions across compaction and restart', async () => {
    const s = await open({ compactBytes: 1 })
    for (let i = 0; i < 5; i++) await s.put(policy(`p${i}`))
    await s.close()
    const r = await open()
    expect(r.resourceVersion).toBe(5)
    expect(r.list('ServicePolicy')).toHaveLength(5)
    // History restarts at the last snapshot (compactions wait for the log to outgrow the snapshot).
    expect(r.historyStart).toBeGreaterThan(0)
    expect(r.eventsSince(r.historyStart - 1)).toBe('resync')
    expect((r.eventsSince(r.historyStart) as WatchEvent[]).map((e) => e.resourceVersion)).toEqual([1, 2, 3, 4, 5].filter((v) => v > r.historyStart))
    await r.close()
  })

  it('answers resync once `since` is older than the retained history or ahead of it', async () => {
    const s = await open({ historySize: 3 })
    for (let i = 0; i < 6; i++) await s.put(policy(`p${i}`))
    expect(s.eventsSince(2)).toBe('resync')
    expect((s.eventsSince(3) as WatchEvent[]).map((e) => e.resourceVersion)).toEqual([4, 5, 6])
    expect(s.eventsSince(7)).toBe('resync')
    await s.close()
  })

  it('expires leases that are not renewed, as DELETED events', async () => {
    const s = await open()
    const seen: WatchEvent[] = []
    s.subscribe((e) => seen.push(e))
    const kept = await s.register('default', spec)
    const lost = await s.register('default', spec)
    clock += 600
    expect(s.heartbeat(kept.metadata.name, { inflight: 2 })?.status.report).toEqual({ inflight: 2 })
    clock += 600
    const deleted = new Promise<void>((resolve) => s.subscribe((e) => e.type === 'DELETED' && resolve()))
    expect(s.expireLeases()).toBe(1)
    expect(s.expireLeases()).toBe(0)
    await deleted
    await s.close()
    expect(seen.at(-1)).toMatchObject({ type: 'DELETED', object: { kind: 'Instance', metadata: { name: lost.metadata.name } } })
    expect(s.instances().map((i) => i.metadata.name)).toEqual([kept.metadata.name])
    expect(s.heartbeat(lost.metadata.name)).toBeUndefined()
  })

  it('answers "unchanged" only once the identical write in flight is durable', async () => {
    const s = await open()
    const order: string[] = []
    await Promise.all([s.put(policy('a')).then((r) => order.push(r.result)), s.put(policy('a')).then((r) => order.push(r.result))])
    expect(order).toEqual(['created', 'unchanged'])
    await s.close()
  })

  it('stops taking writes after a failed disk write, keeps serving reads, and publishes nothing it could not store', async () => {
    const s = await open()
    await s.put(policy('a'))
    const seen: WatchEvent[] = []
    s.subscribe((e) => seen.push(e))
    const append = vi.spyOn(FileStore.prototype, 'append').mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }))
    try {
      await expect(s.put(policy('b'))).rejects.toMatchObject({ code: 'MESHLET_ERR_STORE_FAILED', status: 503, message: expect.stringContaining('may or may not have been saved') })
      await expect(s.put(policy('c'))).rejects.toMatchObject({ code: 'MESHLET_ERR_STORE_FAILED', message: expect.stringContaining('restart the control endpoint') })
      await expect(s.register('default', spec)).rejects.toMatchObject({ code: 'MESHLET_ERR_STORE_FAILED' })
      expect(seen).toEqual([])
      expect(s.list('ServicePolicy').map((r) => r.metadata.name)).toEqual(['a'])
      expect(s.resourceVersion).toBe(1)
    } finally {
      append.mockRestore()
    }
    await s.close()
  })
})

describe('ControlState quotas and bounds', () => {
  it('refuses an instance over its service or namespace quota with 429, counting registrations in flight, and takes one again once another leaves', async () => {
    const s = await open({ quotas: { maxInstancesPerService: 2, maxInstancesPerNamespace: 3 } })
    // Three at once: the quota sees the first two before either is durable.
    const results = await Promise.allSettled([s.register('default', spec), s.register('default', spec), s.register('default', spec)])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected'])
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({
      code: 'MESHLET_ERR_QUOTA_EXCEEDED',
      status: 429,
      message: expect.stringMatching(/service default\/payments has 2 instances.*maxInstancesPerService.*--max-instances-per-service/s),
    })
    await s.register('default', { ...spec, service: 'orders' })
    await expect(s.register('default', { ...spec, service: 'stock' })).rejects.toThrow(/namespace default has 3 instances.*--max-instances-per-namespace/s)
    await s.register('shop', { ...spec, service: 'stock' })
    const first = (results[0] as PromiseFulfilledResult<Awaited<ReturnType<ControlState['register']>>>).value
    await s.deregister(first.metadata.name)
    await s.register('default', spec)
    await s.close()
    // The counts are rebuilt on restart.
    const again = await open({ quotas: { maxInstancesPerService: 2, maxInstancesPerNamespace: 3 } })
    expect([again.quotas.instances('default', 'payments'), again.quotas.instances('default'), again.quotas.instances('shop')]).toEqual([2, 3, 1])
    await again.close()
  })

  it('refuses instance metadata over its quota with 422 naming the field and the option', async () => {
    const s = await open({ quotas: { maxInstanceMetadataBytes: 100 } })
    await s.register('default', { ...spec, metadata: { a: 'x'.repeat(99) } })
    await expect(s.register('default', { ...spec, metadata: { a: 'x'.repeat(100) } })).rejects.toMatchObject({
      code: 'MESHLET_ERR_CONFIG_INVALID',
      status: 422,
      issues: [{ path: 'metadata', message: expect.stringContaining('101 bytes (keys and values), over the 100-byte quota per instance') }],
    })
    await s.close()
  })

  it('refuses a write that takes the store over maxStoreBytes (dry runs too), lets deletes through, and counts a replacement by its new size', async () => {
    const s = await open({ quotas: { maxStoreBytes: 1500 } })
    // Names of one length, so every policy stores the same number of bytes.
    await s.put(policy('p0'))
    const one = s.quotas.storeBytes
    expect(one).toBeGreaterThan(100)
    const n = Math.floor(1500 / one)
    for (let i = 1; i < n; i++) await s.put(policy(`p${i}`))
    await expect(s.put(policy('over'), { dryRun: true })).rejects.toMatchObject({ code: 'MESHLET_ERR_QUOTA_EXCEEDED', message: expect.stringContaining('--max-store-bytes') })
    await expect(s.put(policy('over'))).rejects.toMatchObject({ code: 'MESHLET_ERR_QUOTA_EXCEEDED' })
    // Replacing an object counts only the difference.
    await s.put(policy('p0', '2s'))
    // MODIFIED is 3 bytes longer than ADDED, the rv may have a digit more.
    expect(s.quotas.storeBytes - n * one).toBeLessThanOrEqual(4)
    await s.delete('ServicePolicy', 'default', 'p1')
    await s.delete('ServicePolicy', 'default', 'p2')
    await s.put(policy('over'))
    await s.close()
  })

  it('keeps heartbeat reports out of the snapshot', async () => {
    const s = await open()
    const inst = await s.register('default', spec)
    s.heartbeat(inst.metadata.name, { inflight: 3 })
    expect(s.instance(inst.metadata.name)?.status.report).toEqual({ inflight: 3 })
    expect(s.snapshot().instances[0]!.status).toEqual({ expiresAt: expect.any(String), lastHeartbeat: expect.any(String) })
    await s.close()
  })

  it('bounds the history by bytes as well as by count', async () => {
    const s = await open({ historyBytes: 2000 })
    for (let i = 0; i < 20; i++) await s.put(policy(`p${i}`))
    expect(s.historyBytes).toBeLessThanOrEqual(2000)
    expect(s.historyBytes).toBeGreaterThan(1000)
    expect(s.eventsSince(0)).toBe('resync')
    expect(s.eventsSince(s.historyStart)).not.toBe('resync')
    await s.close()
  })

  it('compacts only once the log outgrows the snapshot, so a growing state is not rewritten every few writes', async () => {
    const compact = vi.spyOn(FileStore.prototype, 'compact')
    try {
      const s = await open({ compactBytes: 4096, quotas: { maxInstanceMetadataBytes: 64 * 1024 } })
      // 200 instances of ~2 KiB: with a fixed 4 KiB threshold this compacted about 100 times, rewriting the whole state each time.
      for (let i = 0; i < 200; i++) await s.register('default', { ...spec, metadata: { blob: 'x'.repeat(1000), more: 'y'.repeat(1000) } })
      // The log must reach the snapshot's size between compactions: sizes double, so about log2(400 KiB / 4 KiB) of them.
      expect(compact.mock.calls.length).toBeLessThanOrEqual(10)
      expect(compact.mock.calls.length).toBeGreaterThanOrEqual(3)
      await s.close()
    } finally {
      compact.mockRestore()
    }
  })
})
