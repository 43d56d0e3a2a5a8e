/**
 * Watches against a large store ("Hostile input", finding 1): watches opened together share one
 * paged start and stream it with backpressure, so memory does not grow with watchers × store; a
 * watcher that never reads makes the server queue at most maxWatchBuffer for it; watches are
 * bounded in number. Memory is measured on a real `meshlet control` process (its peak RSS, from
 * /proc, after resetting it), so the test's own buffers do not count.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ControlClient, type WatchEvent } from '@meshlet/core'
import type { Logger } from '../src/index.js'
import { ADMIN, call, CLI, JOIN, kill9, removeTempDirs, startTestControl, tempDir, WatchReader } from './control-harness.js'

const children: ChildProcess[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map(kill9))
})
afterAll(removeTempDirs)

/** `kib` entries of 1,000 bytes (key and value): about `kib` KiB of instance metadata. */
const metadata = (kib: number) => Object.fromEntries(Array.from({ length: kib }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'x'.repeat(996)]))

async function registerMany(url: string, n: number, kib: number, concurrency = 8): Promise<void> {
  const join = new ControlClient({ url, token: JOIN })
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++
      await join.register({ service: `svc-${next % 5}`, port: 3000, metadata: metadata(kib), ttl: '1h' })
    }
  }))
}

/** Reads a watch without keeping it: counts its lines until the first BOOKMARK. */
function countUntilBookmark(url: string): Promise<{ lines: number; bytes: number }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: '/v1/watch', agent: false, headers: { authorization: `Bearer ${JOIN}` } }, (res) => {
      let lines = 0
      let bytes = 0
      let tail = Buffer.alloc(0)
      res.on('data', (c: Buffer) => {
        bytes += c.length
        for (let at = c.indexOf(10); at >= 0; at = c.indexOf(10, at + 1)) lines++
        const both = Buffer.concat([tail, c.subarray(-256)])
        tail = both.subarray(-64)
        if (both.includes('"type":"BOOKMARK"')) {
          resolve({ lines, bytes })
          req.destroy()
        }
      })
      res.on('error', () => {})
      res.on('close', () => reject(new Error(`the watch ended after ${lines} lines without a BOOKMARK`)))
    })
    req.on('error', reject)
    req.end()
  })
}

const kib = (pid: number, field: 'VmRSS' | 'VmHWM') => readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(s)![1]))

describe('watches against a large store', () => {
  it.skipIf(process.platform !== 'linux')('five watches without since over 500 instances × 32 KiB: the endpoint\'s peak RSS grows by less than one copy of the store', { timeout: 120_000 }, async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, [CLI, 'control', '--port', '0', '--data', dir, '--max-instance-metadata-bytes', '64KiB'], { env: { ...process.env, MESHLET_TOKEN: ADMIN, MESHLET_JOIN_TOKEN: JOIN }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    const url = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString()
        const m = /listening on (http:\/\/\S+)/.exec(out)
        if (m) resolve(m[1]!)
      })
      child.on('exit', (code) => reject(new Error(`meshlet control exited with ${code}`)))
    })
    await registerMany(url, 500, 32)
    // Peak RSS from here on: writing 5 to clear_refs resets VmHWM to the current RSS.
    await writeFile(`/proc/${child.pid}/clear_refs`, '5')
    const before = await kib(child.pid!, 'VmRSS')
    const watches = await Promise.all(Array.from({ length: 5 }, () => countUntilBookmark(url)))
    const peak = await kib(child.pid!, 'VmHWM')
    for (const w of watches) {
      expect(w.lines).toBe(501)
      expect(w.bytes).toBeGreaterThan(500 * 32 * 1000)
    }
    // The store is ~16 MB as JSON. Each watch used to build and encode its own copy and write it
    // at once: ~3 copies per watch (the events, the joined text, the socket's bytes), ~250 MB for
    // five. Now: the 8 MiB page cache, a page and a socket buffer per watch, and the garbage of
    // encoding, which fills V8's young generation (three 16 MiB semi-spaces on 64-bit Node) before
    // it is scavenged: ~60 MiB that does not grow with the store or the watchers (measured: +43 MiB
    // with a 190 MB store, where the old code took +2.1 GiB).
    expect(peak - before, `peak RSS grew by ${peak - before} KiB`).toBeLessThan(96 * 1024)
  })

  it('a watcher that never reads makes the endpoint queue at most maxWatchBuffer for it, then is cut off; other watchers see everything', { timeout: 60_000 }, async () => {
    const warnings: string[] = []
    let noticeCut: () => void = () => {}
    // The endpoint says when it cuts a watcher off (a paused client socket would not see its close).
    const cut = new Promise<void>((resolve) => (noticeCut = resolve))
    const log: Logger = {
      info: () => {},
      debug: () => {},
      error: () => {},
      warn: (m) => {
        warnings.push(m)
        if (m.includes('bytes behind')) noticeCut()
      },
    }
    const maxWatchBuffer = 1024 * 1024
    await using server = await startTestControl({ maxWatchBuffer, maxInstanceMetadataBytes: 64 * 1024, log })
    await registerMany(server.url, 200, 32)

    // Asks for the watch and never reads a byte: the 6.5 MB start stops at what the sockets hold
    // (the kernel's: the client's unread window and the server's send buffer, up to 4 MB here).
    const stuck = connect(server.port, '127.0.0.1')
    stuck.pause()
    stuck.on('error', () => {})
    stuck.write(`GET /v1/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${JOIN}\r\n\r\n`)
    const reader = new WatchReader(server.url)
    await reader.ready

    // Each change is queued for the stuck watcher until more than maxWatchBuffer waits for it.
    const join = new ControlClient({ url: server.url, token: JOIN })
    let closed = false
    void cut.then(() => (closed = true))
    let changes = 0
    while (!closed && changes < 200) {
      await join.register({ service: 'more', port: 1, metadata: metadata(32) })
      changes++
    }
    await cut
    stuck.destroy()
    const behind = warnings.map((m) => /fell (\d+) bytes behind/.exec(m)).find((m) => m !== null)
    expect(behind, warnings.join('\n')).toBeDefined()
    // At most the limit, plus the change that went over it and the page the socket was left holding.
    expect(Number(behind![1])).toBeLessThanOrEqual(maxWatchBuffer + 33 * 1024 + 80 * 1024)
    // With the start written at once it would have been over the limit at the first change.
    expect(changes).toBeGreaterThan(20)
    await reader.until((e) => e.filter((x) => x.type === 'ADDED').length === 200 + changes)
    expect(reader.events.filter((e) => e.type === 'BOOKMARK')[0]!.resourceVersion).toBe(200)
    reader.close()
  })

  it('changes made while a start is streaming come after its BOOKMARK, in order, none lost', async () => {
    await using server = await startTestControl({ maxInstanceMetadataBytes: 64 * 1024 })
    await registerMany(server.url, 300, 16)
    const w = new WatchReader(server.url)
    await w.ready
    const join = new ControlClient({ url: server.url, token: JOIN })
    for (let i = 0; i < 20; i++) await join.register({ service: 'late', port: 1 })
    await w.until((e) => e.filter((x) => x.type === 'ADDED').length === 320)
    const kinds = w.events.map((e: WatchEvent) => e.type)
    expect(kinds.indexOf('BOOKMARK')).toBe(300)
    expect(w.events[300]!.resourceVersion).toBe(300)
    expect(w.events.slice(301).filter((e) => e.type === 'ADDED').map((e) => e.resourceVersion)).toEqual(Array.from({ length: 20 }, (_, i) => 301 + i))
    w.close()
  })

  it('refuses a watch over maxWatchesPerToken or maxWatches with 429 MESHLET_ERR_QUOTA_EXCEEDED naming the option, and takes one again once a watch closes', async () => {
    await using server = await startTestControl({ maxWatches: 3, maxWatchesPerToken: 2 })
    const a = new WatchReader(server.url)
    const b = new WatchReader(server.url)
    await Promise.all([a.ready, b.ready])
    const third = await call(server.url, 'GET', '/v1/watch', { token: JOIN })
    expect(third.status).toBe(429)
    expect(third.json.error).toEqual({ code: 'MESHLET_ERR_QUOTA_EXCEEDED', message: expect.stringContaining('the join token has 2 watches open, its quota (maxWatchesPerToken)') })
    expect(third.json.error.message).toContain('meshlet control --max-watches-per-token')
    // The admin token has its own count, up to the endpoint's total.
    const admin = new WatchReader(server.url, '', { token: ADMIN })
    await admin.ready
    expect(admin.status).toBe(200)
    const over = await call(server.url, 'GET', '/v1/watch', { token: ADMIN })
    expect(over.status).toBe(429)
    expect(over.json.error.message).toMatch(/3 watches open, its quota \(maxWatches\).*--max-watches\)/s)
    // Once a watch closes (the endpoint notices the close on its own schedule), a new one is taken.
    a.close()
    let again: WatchReader | undefined
    for (let i = 0; i < 200; i++) {
      const r = new WatchReader(server.url)
      await r.ready
      if (r.status !== 429) {
        again = r
        break
      }
    }
    expect(again?.status).toBe(200)
    again?.close()
    b.close()
    admin.close()
  })
})
