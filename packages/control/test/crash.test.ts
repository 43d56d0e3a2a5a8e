/** The endpoint as a real process: SIGKILL mid-write, restart, damaged files. */
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { ControlClient } from '../src/index.js'
import { ADMIN, JOIN, kill9, policy, removeTempDirs, spawnControl, tempDir } from './control-harness.js'

const children: ChildProcess[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map(kill9))
})
afterAll(removeTempDirs)

async function start(dir: string) {
  const c = await spawnControl(dir)
  children.push(c.child)
  return { ...c, admin: new ControlClient({ url: c.url, token: ADMIN }), join: new ControlClient({ url: c.url, token: JOIN }) }
}

describe('crash safety', () => {
  it('every acknowledged write survives SIGKILL, and restart restores resources, leases and resourceVersions', { timeout: 60_000 }, async () => {
    const dir = await tempDir()
    const first = await start(dir)
    const lease = await first.join.register({ service: 'payments', port: 3001, revision: 'v1', ttl: '1h' })

    const acked = new Map<string, number>()
    let killed = false
    let reachedTarget: () => void = () => {}
    const target = new Promise<void>((r) => (reachedTarget = r))
    // 8 writers, each creating its own resources one after another until the endpoint dies.
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !killed; i++) {
        const name = `w${w}-n${i}`
        try {
          const { object } = await first.admin.put(policy(name, { timeout: `${i + 1}s` }) as never)
          acked.set(name, object.metadata.resourceVersion!)
          if (acked.size >= 200) reachedTarget()
        } catch {
          return // the endpoint is gone: this write was never acknowledged
        }
      }
    })
    await target
    killed = true
    await kill9(first.child)
    await Promise.all(writers)
    expect(acked.size).toBeGreaterThanOrEqual(200)

    const second = await start(dir)
    const stored = new Map((await second.admin.list('servicepolicies')).items.map((r) => [r.metadata.name, r]))
    for (const [name, rv] of acked) {
      expect(stored.get(name)?.metadata.resourceVersion, name).toBe(rv)
      expect(stored.get(name)?.spec).toMatchObject({ timeout: Number(name.split('-n')[1]) * 1000 + 1000 })
    }
    const maxAcked = Math.max(...acked.values())
    const instances = (await second.join.instances({ service: 'payments' })).items
    expect(instances.map((i) => i.metadata.name)).toEqual([lease.id])
    expect(instances[0]!.spec).toMatchObject({ revision: 'v1', port: 3001 })
    // resourceVersions keep increasing from where they were.
    const next = await second.admin.put(policy('after-restart') as never)
    expect(next.object.metadata.resourceVersion).toBeGreaterThan(maxAcked)
    await second.join.heartbeat(lease.id)
  })

  it('refuses to start on a corrupted store file, naming the file and byte offset', async () => {
    const dir = await tempDir()
    const first = await start(dir)
    for (let i = 0; i < 5; i++) await first.admin.put(policy(`p${i}`) as never)
    await kill9(first.child)
    const wal = join(dir, 'meshlet.wal')
    const buf = await readFile(wal)
    // Inside the first record's payload: intact records follow, so this cannot be a torn write.
    const offset = 8 + 8 + 4
    buf[offset]! ^= 0x5a
    await writeFile(wal, buf)
    const err = (await spawnControl(dir).catch((e: unknown) => e)) as { code: number; stderr: string }
    expect(err.code).toBe(1)
    expect(err.stderr).toContain('MESHLET_ERR_STORE_CORRUPT')
    expect(err.stderr).toContain(`store file ${wal} is corrupt at byte offset 8: record 0: checksum mismatch`)
    expect(err.stderr).toContain('refuses to start')
  })

  it('refuses a second endpoint on the same data directory, and takes over the lock of a killed one', async () => {
    const dir = await tempDir()
    const first = await start(dir)
    const err = (await spawnControl(dir).catch((e: unknown) => e)) as { code: number; stderr: string }
    expect(err.code).toBe(1)
    expect(err.stderr).toContain(`is in use by another meshlet control endpoint (pid ${first.child.pid})`)
    expect(err.stderr).toContain('[MESHLET_ERR_STORE_LOCKED]')
    await kill9(first.child)
    await start(dir)
  })

  it('truncates a write torn by a crash at the end of the log with a warning, and keeps everything before it', async () => {
    const dir = await tempDir()
    const first = await start(dir)
    for (let i = 0; i < 3; i++) await first.admin.put(policy(`p${i}`) as never)
    await kill9(first.child)
    await appendFile(join(dir, 'meshlet.wal'), Buffer.from([0x40, 0, 0, 0, 1, 2, 3, 4, 0x7b, 0x22]))
    const second = await start(dir)
    expect(second.stderr()).toMatch(/warning: .*meshlet\.wal: the last record \(byte offset \d+, 10 bytes\) is incomplete/)
    expect((await second.admin.list('servicepolicies')).items.map((r) => r.metadata.resourceVersion)).toEqual([1, 2, 3])
  })

  it('creates the tokens on first start with mode 0600 and prints them once', async () => {
    const dir = await tempDir()
    const env = { MESHLET_TOKEN: '', MESHLET_JOIN_TOKEN: '' }
    const first = await spawnControl(dir, env)
    children.push(first.child)
    const admin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim()
    expect(first.stderr()).toContain(admin)
    expect((await stat(join(dir, 'admin.token'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'join.token'))).mode & 0o777).toBe(0o600)
    await kill9(first.child)
    const second = await spawnControl(dir, env)
    children.push(second.child)
    expect(second.stderr()).not.toContain(admin)
    await new ControlClient({ url: second.url, token: admin }).put(policy('a') as never)
  })
})
