import { afterAll, describe, expect, it } from 'vitest'
import type { WatchEvent } from '@meshlet/core'
import { call, JOIN, policy, removeTempDirs, startTestControl, WatchReader } from './control-harness.js'

afterAll(removeTempDirs)

const changes = (events: WatchEvent[]) => events.filter((e) => e.type !== 'BOOKMARK')

describe('watch', () => {
  it('without since: every current object as ADDED, a BOOKMARK, then live changes in order (NDJSON)', async () => {
    await using server = await startTestControl()
    await call(server.url, 'PUT', '/v1/servicepolicies/default/a', { body: policy('a') })
    await call(server.url, 'POST', '/v1/instances', { body: { service: 'a', port: 1 } })
    const w = new WatchReader(server.url)
    await w.ready
    await w.until((e) => e.some((x) => x.type === 'BOOKMARK'))
    expect(w.events.map((e) => [e.type, e.resourceVersion, e.object?.kind])).toEqual([['ADDED', 1, 'ServicePolicy'], ['ADDED', 2, 'Instance'], ['BOOKMARK', 2, undefined]])
    await call(server.url, 'PUT', '/v1/servicepolicies/default/a', { body: policy('a', { timeout: '1s' }) })
    await call(server.url, 'DELETE', '/v1/servicepolicies/default/a')
    await w.until((e) => changes(e).length === 4)
    expect(changes(w.events).slice(2).map((e) => [e.type, e.resourceVersion])).toEqual([['MODIFIED', 3], ['DELETED', 4]])
    w.close()
  })

  it('resumes from since=RV with exactly the changes after it, filtered by kind and namespace', async () => {
    await using server = await startTestControl()
    for (const [ns, n] of [['default', 'a'], ['shop', 'b'], ['default', 'c']] as const) await call(server.url, 'PUT', `/v1/servicepolicies/${ns}/${n}`, { body: policy(n, {}, { namespace: ns }) })
    await call(server.url, 'POST', '/v1/instances', { body: { service: 'a', port: 1 } })
    const all = new WatchReader(server.url, '?since=1')
    const ns = new WatchReader(server.url, '?since=0&namespace=default&kind=servicepolicies')
    await Promise.all([all.ready, ns.ready])
    await all.until((e) => e.some((x) => x.type === 'BOOKMARK'))
    await ns.until((e) => e.some((x) => x.type === 'BOOKMARK'))
    expect(all.events.map((e) => e.resourceVersion)).toEqual([2, 3, 4, 4])
    expect(changes(ns.events).map((e) => e.object!.metadata.name)).toEqual(['a', 'c'])
    all.close()
    ns.close()
  })

  it('streams server-sent events with ids, resuming from Last-Event-ID', async () => {
    await using server = await startTestControl()
    await call(server.url, 'PUT', '/v1/servicepolicies/default/a', { body: policy('a') })
    const sse = new WatchReader(server.url, '?since=0', { sse: true })
    await sse.ready
    await call(server.url, 'PUT', '/v1/servicepolicies/default/b', { body: policy('b') })
    await sse.until((e) => changes(e).length === 2)
    expect(changes(sse.events).map((e) => e.object!.metadata.name)).toEqual(['a', 'b'])
    sse.close()
    // An EventSource reconnects with Last-Event-ID: the stream resumes after it.
    const resumed = new WatchReader(server.url, '', { sse: true, headers: { 'last-event-id': '1' } })
    await resumed.ready
    await resumed.until((e) => e.some((x) => x.type === 'BOOKMARK'))
    expect(resumed.events.map((e) => [e.type, e.resourceVersion])).toEqual([['ADDED', 2], ['BOOKMARK', 2]])
    resumed.close()
  })

  it('sends periodic bookmarks carrying the current resourceVersion', async () => {
    await using server = await startTestControl({ bookmarkInterval: 30 })
    const w = new WatchReader(server.url, '?since=0')
    await w.ready
    await call(server.url, 'PUT', '/v1/servicepolicies/default/a', { body: policy('a') })
    await w.until((e) => e.filter((x) => x.type === 'BOOKMARK' && x.resourceVersion === 1).length >= 2)
    w.close()
  })

  it('answers 410 MESHLET_ERR_RESYNC when since is older than the retained history, or ahead of it', async () => {
    await using server = await startTestControl({ historySize: 5 })
    for (let i = 0; i < 10; i++) await call(server.url, 'PUT', `/v1/servicepolicies/default/p${i}`, { body: policy(`p${i}`) })
    const old = await call(server.url, 'GET', '/v1/watch?since=2')
    expect(old.status).toBe(410)
    expect(old.json.error).toEqual({ code: 'MESHLET_ERR_RESYNC', message: expect.stringContaining('older than the history this endpoint keeps (changes after 5). Resync') })
    const ahead = await call(server.url, 'GET', '/v1/watch?since=99')
    expect(ahead.status).toBe(410)
    expect(ahead.json.error.message).toContain('ahead of this endpoint')
    expect((await call(server.url, 'GET', '/v1/watch?since=-1')).status).toBe(400)
    expect((await call(server.url, 'GET', '/v1/watch?kind=gadgets')).status).toBe(404)
    const ok = new WatchReader(server.url, '?since=5')
    await ok.ready
    await ok.until((e) => e.some((x) => x.type === 'BOOKMARK'))
    expect(changes(ok.events).map((e) => e.resourceVersion)).toEqual([6, 7, 8, 9, 10])
    ok.close()
  })

  it('cuts off a watcher that stops reading once too much is queued for it, without holding up the others', async () => {
    let cutOff: (m: string) => void = () => {}
    const warned = new Promise<string>((resolve) => (cutOff = resolve))
    await using server = await startTestControl({ maxWatchBuffer: 64 * 1024, log: { info: () => {}, error: () => {}, warn: (m) => m.includes('fell') && cutOff(m) } })
    const { request } = await import('node:http')
    const { hostname, port } = new URL(server.url)
    // A watcher that never reads: once the kernel's socket buffers are full, writes queue in the endpoint.
    const stalled = request({ host: hostname, port, path: '/v1/watch?since=0', agent: false, headers: { authorization: `Bearer ${JOIN}` } }, (res) => res.pause())
    stalled.on('error', () => {})
    stalled.end()
    const healthy = new WatchReader(server.url, '?since=0')
    await healthy.ready
    const labels = Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`k${k}`, 'x'.repeat(250)]))
    let stop = false
    let written = 0
    const writing = (async () => {
      while (!stop && written < 3000) await call(server.url, 'PUT', `/v1/servicepolicies/default/p${written}`, { body: policy(`p${written++}`, {}, { labels }) })
    })()
    expect(await warned).toMatch(/fell \d+ bytes behind; closing its watch so it resumes with since=/)
    stop = true
    await writing
    await healthy.until((e) => changes(e).length >= written)
    expect(healthy.ended).toBe(false)
    healthy.close()
    stalled.destroy()
  })

  it('1,000 concurrent watchers all see every change, in order', { timeout: 60_000 }, async () => {
    await using server = await startTestControl()
    const start = server.state.resourceVersion
    const watchers = Array.from({ length: 1000 }, () => new WatchReader(server.url, `?since=${start}`))
    await Promise.all(watchers.map((w) => w.ready))
    await Promise.all(watchers.map((w) => w.until((e) => e.some((x) => x.type === 'BOOKMARK'))))
    const N = 25
    // Concurrent writers, so batches of several changes are committed together.
    await Promise.all(Array.from({ length: N }, (_, i) => call(server.url, 'PUT', `/v1/servicepolicies/default/p${i % 10}`, { body: policy(`p${i % 10}`, { timeout: `${i + 1}s` }) })))
    const final = server.state.resourceVersion
    expect(final - start).toBe(N)
    await Promise.all(watchers.map((w) => w.until((e) => changes(e).length === N)))
    const expected = Array.from({ length: N }, (_, i) => start + i + 1)
    for (const w of watchers) expect(changes(w.events).map((e) => e.resourceVersion)).toEqual(expected)
    for (const w of watchers) w.close()
  })
})
