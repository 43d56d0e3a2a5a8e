import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ControlServer } from '../src/index.js'
import { ADMIN, call, JOIN, policy, removeTempDirs, startTestControl, WatchReader } from './control-harness.js'

let server: ControlServer
let url: string
beforeAll(async () => {
  server = await startTestControl({ sweepInterval: 20 })
  url = server.url
})
afterAll(async () => {
  await server.close()
  await removeTempDirs()
})

const path = (name: string, ns = 'default') => `/v1/servicepolicies/${ns}/${name}`

describe('resources', () => {
  it('creates, reads, replaces, lists and deletes a ServicePolicy', async () => {
    const created = await call(url, 'PUT', path('orders'), { body: policy('orders', { timeout: '2s', retries: { attempts: 3, perTryTimeout: '500ms' } }) })
    expect(created.status).toBe(201)
    expect(created.headers['meshlet-result']).toBe('created')
    expect(created.json).toMatchObject({ kind: 'ServicePolicy', metadata: { name: 'orders', namespace: 'default' }, spec: { timeout: 2000, retries: { attempts: 3, perTryTimeout: 500 } } })
    const rv = created.json.metadata.resourceVersion as number
    expect((await call(url, 'GET', path('orders'), { token: JOIN })).json).toEqual(created.json)

    const replaced = await call(url, 'PUT', path('orders'), { body: policy('orders', { timeout: '3s' }) })
    expect(replaced.status).toBe(200)
    expect(replaced.headers['meshlet-result']).toBe('configured')
    expect(replaced.json.metadata.resourceVersion).toBeGreaterThan(rv)
    expect(replaced.json.spec).toEqual({ service: 'orders', timeout: 3000 })

    await call(url, 'PUT', path('orders', 'shop'), { body: policy('orders', {}, { namespace: 'shop' }) })
    const all = await call(url, 'GET', '/v1/servicepolicies', { token: JOIN })
    expect(all.json).toMatchObject({ kind: 'List', metadata: { resourceVersion: server.state.resourceVersion } })
    expect(all.json.items.map((i: { metadata: { namespace: string } }) => i.metadata.namespace)).toEqual(['default', 'shop'])
    expect((await call(url, 'GET', '/v1/ServicePolicy/shop', { token: JOIN })).json.items).toHaveLength(1)
    expect((await call(url, 'GET', '/v1/sp/nowhere', { token: JOIN })).json.items).toEqual([])

    const deleted = await call(url, 'DELETE', path('orders'))
    expect(deleted.status).toBe(200)
    expect(deleted.json.metadata.resourceVersion).toBe(server.state.resourceVersion)
    expect((await call(url, 'GET', path('orders'))).json.error).toEqual({ code: 'MESHLET_ERR_NOT_FOUND', message: 'ServicePolicy default/orders does not exist' })
    expect((await call(url, 'DELETE', path('orders'))).status).toBe(404)
  })

  it('takes namespace from the URL when the body leaves it out, and refuses a body that contradicts the URL', async () => {
    const r = await call(url, 'PUT', path('fromurl', 'shop'), { body: { ...policy('fromurl'), metadata: { name: 'fromurl' } } })
    expect(r.json.metadata.namespace).toBe('shop')
    const bad = await call(url, 'PUT', path('other'), { body: policy('fromurl') })
    expect(bad.status).toBe(422)
    expect(bad.json.error.issues).toEqual([{ path: 'metadata.name', message: 'is "fromurl" but the URL names "other"' }])
  })

  it('refuses timeout: banana with 422 naming spec.timeout', async () => {
    const r = await call(url, 'PUT', path('payments'), { body: policy('payments', { timeout: 'banana', retries: { attempts: 3, perTryTimeout: '500ms' } }) })
    expect(r.status).toBe(422)
    expect(r.json.error.code).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(r.json.error.issues).toEqual([{ path: 'spec.timeout', message: expect.stringContaining('"banana" is not a duration') }])
    expect(r.json.error.message).toContain('spec.timeout: "banana" is not a duration')
    expect((await call(url, 'GET', path('payments'))).status).toBe(404)
  })

  it('lists every field problem at once', async () => {
    const r = await call(url, 'PUT', path('many'), { body: { apiVersion: 'meshlet.dev/v2', kind: 'ServicePolicy', metadata: { name: 'many' }, spec: { service: 'many', retries: { attempts: 99 }, balancer: 'random' } } })
    expect(r.status).toBe(422)
    expect(r.json.error.issues.map((i: { path: string }) => i.path)).toEqual(['apiVersion', 'spec.retries.attempts', 'spec.balancer'])
  })

  it('answers 409 when the resourceVersion precondition does not hold', async () => {
    const first = await call(url, 'PUT', path('cas'), { body: policy('cas') })
    const rv = first.json.metadata.resourceVersion as number
    const ok = await call(url, 'PUT', path('cas'), { body: policy('cas', { timeout: '1s' }, { resourceVersion: rv }) })
    expect(ok.status).toBe(200)
    const stale = await call(url, 'PUT', path('cas'), { body: policy('cas', { timeout: '9s' }, { resourceVersion: rv }) })
    expect(stale.status).toBe(409)
    expect(stale.json.error).toMatchObject({ code: 'MESHLET_ERR_CONFLICT', message: expect.stringContaining(`expected resourceVersion ${rv}, but it is at resourceVersion ${ok.json.metadata.resourceVersion}`) })
    expect((await call(url, 'DELETE', `${path('cas')}?resourceVersion=${rv}`)).status).toBe(409)
    expect((await call(url, 'DELETE', `${path('cas')}?resourceVersion=${ok.json.metadata.resourceVersion}`)).status).toBe(200)
  })

  it('validates without storing on ?dryRun=true', async () => {
    const rv = server.state.resourceVersion
    const r = await call(url, 'PUT', `${path('dry')}?dryRun=true`, { body: policy('dry') })
    expect(r.status).toBe(201)
    expect(r.headers['meshlet-result']).toBe('created')
    expect(server.state.resourceVersion).toBe(rv)
    expect((await call(url, 'GET', path('dry'))).status).toBe(404)
  })

  it('serves the JSON Schema of every kind without a token', async () => {
    const r = await call(url, 'GET', '/v1/schema', { token: null })
    expect(r.status).toBe(200)
    expect(r.json.oneOf[0].properties.kind).toEqual({ const: 'ServicePolicy' })
    expect((await call(url, 'GET', '/healthz', { token: null })).json).toEqual({ status: 'ok', resourceVersion: server.state.resourceVersion })
  })
})

describe('auth', () => {
  it('needs a token to read, the admin token to write, and accepts admin wherever join is', async () => {
    const none = await call(url, 'GET', '/v1/servicepolicies', { token: null })
    expect(none.status).toBe(401)
    expect(none.json.error.code).toBe('MESHLET_ERR_UNAUTHENTICATED')
    expect((await call(url, 'GET', '/v1/servicepolicies', { token: 'guess' })).json.error.message).toContain('not valid for this control endpoint')
    expect((await call(url, 'GET', '/v1/watch', { token: null })).status).toBe(401)
    const joinWrite = await call(url, 'PUT', path('x'), { token: JOIN, body: policy('x') })
    expect(joinWrite.status).toBe(403)
    expect(joinWrite.json.error.code).toBe('MESHLET_ERR_FORBIDDEN')
    expect((await call(url, 'DELETE', path('x'), { token: JOIN })).status).toBe(403)
    expect((await call(url, 'GET', '/v1/servicepolicies', { token: ADMIN })).status).toBe(200)
    const reg = await call(url, 'POST', '/v1/instances', { token: ADMIN, body: { service: 'a', port: 1 } })
    expect(reg.status).toBe(201)
    expect((await call(url, 'POST', '/v1/instances', { token: null, body: { service: 'a', port: 1 } })).status).toBe(401)
    await call(url, 'DELETE', `/v1/instances/${reg.json.id}`, { token: JOIN })
  })
})

describe('hostile input', () => {
  it('answers 413 over the body limit, declared or streamed', async () => {
    const big = JSON.stringify({ ...policy('big'), spec: { service: 'big', pad: 'x'.repeat(1024 * 1024) } })
    const declared = await call(url, 'PUT', path('big'), { body: big })
    expect(declared.status).toBe(413)
    expect(declared.json.error.code).toBe('MESHLET_ERR_TOO_LARGE')
    const chunked = await call(url, 'PUT', path('big'), { body: big, headers: { 'transfer-encoding': 'chunked' } })
    expect(chunked.status).toBe(413)
    expect((await call(url, 'GET', '/healthz')).status).toBe(200)
  })

  it('answers 400 to bad JSON, empty bodies and deep nesting', async () => {
    const bad = await call(url, 'PUT', path('j'), { body: '{"apiVersion": ' })
    expect(bad.status).toBe(400)
    expect(bad.json.error).toMatchObject({ code: 'MESHLET_ERR_BAD_REQUEST', message: expect.stringContaining('not valid JSON') })
    expect((await call(url, 'PUT', path('j'), { body: '' })).json.error.message).toContain('the body is empty')
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    const r = await call(url, 'PUT', path('j'), { body: `{"apiVersion":"meshlet.dev/v1","kind":"ServicePolicy","metadata":{"name":"j"},"spec":${deep}}` })
    expect(r.status).toBe(400)
    expect(r.json.error.message).toMatch(/nests over 1000 levels deep/)
    const reg = await call(url, 'POST', '/v1/instances', { body: { service: 'a', port: 1, metadata: { a: { b: 'c' } } } })
    expect(reg.status).toBe(422)
    expect(reg.json.error.issues[0].path).toBe('metadata.a')
  })

  it('refuses names that are not DNS labels, so nothing can walk out of a path', async () => {
    for (const p of ['/v1/servicepolicies/default/..%2F..%2Fetc%2Fpasswd', '/v1/servicepolicies/default/UPPER', '/v1/servicepolicies/..%2Fx/name', '/v1/servicepolicies/default/%E0%A4%A']) {
      const r = await call(url, 'GET', p)
      expect(r.status, p).toBe(400)
      expect(r.json.error.code).toBe('MESHLET_ERR_BAD_REQUEST')
    }
    const traversal = await call(url, 'GET', '/v1/servicepolicies/default/../../../etc/passwd')
    expect(traversal.status).toBe(404)
    const body = await call(url, 'PUT', path('ok'), { body: policy('ok', {}, { name: '../../etc' }) })
    expect(body.status).toBe(422)
    expect(body.json.error.issues[0].path).toBe('metadata.name')
  })

  it('answers 404 to unknown kinds and paths, 405 to wrong methods', async () => {
    const kind = await call(url, 'GET', '/v1/gadgets')
    expect(kind.status).toBe(404)
    expect(kind.json.error).toEqual({ code: 'MESHLET_ERR_UNKNOWN_KIND', message: expect.stringContaining('this endpoint serves servicepolicies, routes') })
    expect((await call(url, 'PUT', '/v1/gadgets/default/x', { body: policy('x') })).json.error.code).toBe('MESHLET_ERR_UNKNOWN_KIND')
    expect((await call(url, 'GET', '/')).status).toBe(404)
    expect((await call(url, 'GET', '/v1/servicepolicies/a/b/c')).status).toBe(404)
    expect((await call(url, 'POST', path('x'))).status).toBe(405)
    expect((await call(url, 'POST', '/v1/watch')).json.error.code).toBe('MESHLET_ERR_METHOD_NOT_ALLOWED')
  })
})

describe('instances', () => {
  const regs: string[] = []
  afterEach(async () => {
    for (const id of regs.splice(0)) await call(url, 'DELETE', `/v1/instances/${id}`, { token: JOIN })
  })

  it('registers, lists, heartbeats with a report, and deregisters', async () => {
    const r = await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'payments', namespace: 'shop', revision: 'v2', zone: 'eu-1a', port: 3001, protocols: ['http', 'grpc'], metadata: { team: 'pay' }, ttl: '10s' } })
    expect(r.status).toBe(201)
    const id = r.json.id as string
    regs.push(id)
    expect(r.json).toMatchObject({ ttl: 10_000, instance: { kind: 'Instance', metadata: { name: id, namespace: 'shop' }, spec: { service: 'payments', revision: 'v2', zone: 'eu-1a', address: '127.0.0.1', port: 3001, protocols: ['http', 'grpc'], metadata: { team: 'pay' }, ttl: 10_000 } } })
    await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'orders', port: 3002 } }).then((x) => regs.push(x.json.id))

    expect((await call(url, 'GET', '/v1/instances?service=payments', { token: JOIN })).json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([id])
    expect((await call(url, 'GET', '/v1/instances?namespace=default', { token: JOIN })).json.items.map((i: { spec: { service: string } }) => i.spec.service)).toEqual(['orders'])

    const hb = await call(url, 'POST', `/v1/instances/${id}/heartbeat`, { token: JOIN, body: { report: { endpoints: 3, inflight: 1 } } })
    expect(hb.status).toBe(200)
    expect(Date.parse(hb.json.expiresAt)).toBeGreaterThan(Date.now() + 9000)
    // `endpoints` is not a field of a report (instance-report.ts): dropped, not kept unbounded.
    expect((await call(url, 'GET', `/v1/instances/${id}`, { token: JOIN })).json.status.report).toEqual({ inflight: 1 })
    expect((await call(url, 'POST', `/v1/instances/${id}/heartbeat`, { token: JOIN, body: { extra: 1 } })).status).toBe(422)

    expect((await call(url, 'DELETE', `/v1/instances/${id}`, { token: JOIN })).status).toBe(200)
    const gone = await call(url, 'POST', `/v1/instances/${id}/heartbeat`, { token: JOIN })
    expect(gone.status).toBe(404)
    expect(gone.json.error).toMatchObject({ code: 'MESHLET_ERR_LEASE_NOT_FOUND', message: expect.stringContaining('register again') })
  })

  it('refuses bad registrations by field', async () => {
    const r = await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'Payments', port: 70000, protocols: ['ftp'], ttl: 'soon' } })
    expect(r.status).toBe(422)
    expect(r.json.error.issues.map((i: { path: string }) => i.path)).toEqual(['service', 'port', 'protocols[0]', 'ttl'])
    expect((await call(url, 'POST', '/v1/instances', { token: JOIN })).json.error.issues).toEqual([
      { path: 'service', message: 'is required' },
      { path: 'port', message: 'is required' },
    ])
  })

  it('removes an instance whose lease runs out, with a DELETED watch event', async () => {
    const watch = new WatchReader(url, `?since=${server.state.resourceVersion}&kind=instances`)
    await watch.ready
    const started = Date.now()
    const r = await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'flaky', port: 3009, ttl: '300ms' } })
    const id = r.json.id as string
    await watch.until((events) => events.some((e) => e.type === 'DELETED' && e.object.metadata.name === id))
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(2000)
    expect(watch.events.filter((e) => e.type !== 'BOOKMARK').map((e) => e.type)).toEqual(['ADDED', 'DELETED'])
    expect((await call(url, 'GET', '/v1/instances?service=flaky', { token: JOIN })).json.items).toEqual([])
    watch.close()
  })
})
