/**
 * Paged lists over loopback: `limit`/`continue` as kube-apiserver pages, every page of a list at
 * its first page's resourceVersion, a page bounded in bytes whatever the limit, 410 for a token
 * whose snapshot is gone, and ControlClient reading whole lists page by page.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { ControlClient, type Instance, type ListResponse, type Resource } from '@meshlet/core'
import { ADMIN, call, JOIN, policy, removeTempDirs, startTestControl } from './control-harness.js'

afterAll(removeTempDirs)

const names = (items: { metadata: { name: string } }[]) => items.map((i) => i.metadata.name)
const pad = (i: number) => `p${String(i).padStart(2, '0')}`

describe('paged lists', () => {
  it('pages a list with limit and continue, every page at the first page\'s resourceVersion, even with writes in between', async () => {
    await using server = await startTestControl()
    for (let i = 0; i < 25; i++) await call(server.url, 'PUT', `/v1/servicepolicies/default/${pad(i)}`, { body: policy(pad(i)) })
    const first = await call(server.url, 'GET', '/v1/servicepolicies?limit=10', { token: JOIN })
    expect(first.status).toBe(200)
    expect(names(first.json.items)).toEqual(Array.from({ length: 10 }, (_, i) => pad(i)))
    expect(first.json.metadata).toEqual({ resourceVersion: 25, continue: expect.any(String), remainingItemCount: 15 })

    // Changes after the first page: a delete, a replacement and a new policy are not in later pages.
    await call(server.url, 'DELETE', '/v1/servicepolicies/default/p12')
    await call(server.url, 'PUT', '/v1/servicepolicies/default/p13', { body: policy('p13', { timeout: '9s' }) })
    await call(server.url, 'PUT', '/v1/servicepolicies/default/p99', { body: policy('p99') })

    const second = await call(server.url, 'GET', `/v1/servicepolicies?limit=10&continue=${first.json.metadata.continue}`, { token: JOIN })
    expect(names(second.json.items)).toEqual(Array.from({ length: 10 }, (_, i) => pad(i + 10)))
    expect(second.json.items[3].spec.timeout).toBeUndefined()
    expect(second.json.metadata).toMatchObject({ resourceVersion: 25, remainingItemCount: 5 })
    const third = await call(server.url, 'GET', `/v1/servicepolicies?limit=10&continue=${second.json.metadata.continue}`, { token: JOIN })
    expect(names(third.json.items)).toEqual(Array.from({ length: 5 }, (_, i) => pad(i + 20)))
    expect(third.json.metadata).toEqual({ resourceVersion: 25 })

    // A new list sees the store as it is now.
    const now = await call(server.url, 'GET', '/v1/servicepolicies', { token: JOIN })
    expect(now.json.metadata).toEqual({ resourceVersion: 28 })
    expect(now.json.items).toHaveLength(25)
  })

  it('bounds a page in bytes whatever the limit (one item always fits), for resources and instances alike', async () => {
    await using server = await startTestControl({ listPageBytes: 2000 })
    for (let i = 0; i < 40; i++) await call(server.url, 'PUT', `/v1/servicepolicies/default/${pad(i)}`, { body: policy(pad(i)) })
    for (let i = 0; i < 12; i++) await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'payments', port: 3000 + i, metadata: { big: 'x'.repeat(1000) } } })
    for (const path of ['/v1/servicepolicies', '/v1/instances?service=payments']) {
      const seen: string[] = []
      let token: string | undefined
      let pages = 0
      do {
        const page = await call(server.url, 'GET', `${path}${path.includes('?') ? '&' : '?'}limit=1000${token ? `&continue=${token}` : ''}`, { token: JOIN })
        expect(page.status).toBe(200)
        expect(page.json.items.length).toBeGreaterThan(0)
        // Items of one page stay within the bound, or the page is one item on its own.
        const itemBytes = page.json.items.reduce((n: number, i: unknown) => n + JSON.stringify(i).length, 0)
        if (page.json.items.length > 1) expect(itemBytes).toBeLessThanOrEqual(2000)
        seen.push(...names(page.json.items))
        token = page.json.metadata.continue
        pages++
      } while (token !== undefined)
      expect(pages).toBeGreaterThan(2)
      expect(new Set(seen).size).toBe(path.includes('instances') ? 12 : 40)
    }
  })

  it('refuses a damaged token, a token of another list, and a bad limit with 400', async () => {
    await using server = await startTestControl()
    for (let i = 0; i < 3; i++) await call(server.url, 'PUT', `/v1/servicepolicies/shop/${pad(i)}`, { body: policy(pad(i), {}, { namespace: 'shop' }) })
    const first = await call(server.url, 'GET', '/v1/servicepolicies/shop?limit=1', { token: JOIN })
    const token = first.json.metadata.continue as string
    const other = await call(server.url, 'GET', `/v1/servicepolicies?limit=1&continue=${token}`, { token: JOIN })
    expect(other.status).toBe(400)
    expect(other.json.error.message).toContain('belongs to another list')
    expect((await call(server.url, 'GET', `/v1/instances?continue=${token}`, { token: JOIN })).status).toBe(400)
    const damaged = await call(server.url, 'GET', `/v1/servicepolicies/shop?continue=${token.slice(0, -4)}`, { token: JOIN })
    expect(damaged.status).toBe(400)
    expect(damaged.json.error).toMatchObject({ code: 'MESHLET_ERR_BAD_REQUEST', message: expect.stringContaining('not one this endpoint gave out') })
    for (const limit of ['-1', 'ten', '10001', '1.5']) expect((await call(server.url, 'GET', `/v1/servicepolicies?limit=${limit}`, { token: JOIN })).status).toBe(400)
  })

  it('answers 410 for a continue token whose snapshot was evicted once the store moved on, and serves it while the store has not', async () => {
    await using server = await startTestControl()
    for (let i = 0; i < 3; i++) await call(server.url, 'PUT', `/v1/servicepolicies/default/${pad(i)}`, { body: policy(pad(i)) })
    const first = await call(server.url, 'GET', '/v1/servicepolicies?limit=1', { token: JOIN })
    // 32 snapshots are kept at most: 32 more lists evict the first one's.
    for (let i = 0; i < 32; i++) await call(server.url, 'GET', '/v1/servicepolicies/default?limit=1', { token: JOIN })
    // Still at the same resourceVersion: the list is taken again, the same, and the token works.
    const same = await call(server.url, 'GET', `/v1/servicepolicies?limit=1&continue=${first.json.metadata.continue}`, { token: JOIN })
    expect(same.status).toBe(200)
    expect(names(same.json.items)).toEqual(['p01'])
    for (let i = 0; i < 32; i++) await call(server.url, 'GET', '/v1/servicepolicies/default?limit=1', { token: JOIN })
    await call(server.url, 'PUT', '/v1/servicepolicies/default/later', { body: policy('later') })
    const expired = await call(server.url, 'GET', `/v1/servicepolicies?limit=1&continue=${same.json.metadata.continue}`, { token: JOIN })
    expect(expired.status).toBe(410)
    expect(expired.json.error).toMatchObject({ code: 'MESHLET_ERR_RESYNC', message: expect.stringContaining('continue token has expired') })
  })

  it('ControlClient.list and instances read every page into one list at the first page\'s resourceVersion; listPage reads one', async () => {
    await using server = await startTestControl({ listPageBytes: 1500 })
    const admin = new ControlClient({ url: server.url, token: ADMIN })
    for (let i = 0; i < 20; i++) await admin.put(policy(pad(i)) as unknown as Resource)
    for (let i = 0; i < 20; i++) await admin.register({ service: 'payments', port: 4000 + i })
    const all: ListResponse<Resource> = await admin.list('servicepolicies')
    expect(names(all.items)).toEqual(Array.from({ length: 20 }, (_, i) => pad(i)))
    expect(all.metadata).toEqual({ resourceVersion: 40 })
    const instances: ListResponse<Instance> = await admin.instances({ service: 'payments' })
    expect(instances.items).toHaveLength(20)
    const page = await admin.listPage('servicepolicies', 'default', { limit: 3 })
    expect(names(page.items)).toEqual(['p00', 'p01', 'p02'])
    const next = await admin.listPage('servicepolicies', 'default', { limit: 3, continue: page.metadata.continue })
    expect(names(next.items)).toEqual(['p03', 'p04', 'p05'])
    // At most the limit, and fewer when the byte bound comes first.
    const instancePage = await admin.instancesPage({ service: 'payments' }, { limit: 2 })
    expect(instancePage.items).toHaveLength(2)
    expect(instancePage.metadata.remainingItemCount).toBe(18)
  })
})
