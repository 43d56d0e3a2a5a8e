/**
 * Clients that try to make the endpoint keep more and more ("Hostile input", finding 2): instance
 * quotas per service and per namespace, instance metadata, the store's size, heartbeat reports.
 * Each refusal is a 4xx MeshletError that names the quota and the option (and flag) that raises it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ControlClient, MAX_REPORT_BYTES } from '@meshlet/core'
import { ADMIN, call, CLI, JOIN, kill9, policy, removeTempDirs, runCli, startTestControl, tempDir } from './control-harness.js'

const children: ChildProcess[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map(kill9))
})
afterAll(removeTempDirs)

/** About 10 KB of labels (40 × 250 characters; a label value is at most 256). */
const bigLabels = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`note-${i}`, 'x'.repeat(250)]))
const metadata = (bytes: number) => Object.fromEntries(Array.from({ length: Math.ceil(bytes / 1000) }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'x'.repeat(996)]))

describe('instance quotas', () => {
  it('refuses the instance over maxInstancesPerService or maxInstancesPerNamespace with 429 MESHLET_ERR_QUOTA_EXCEEDED naming the quota and how to raise it', async () => {
    await using server = await startTestControl({ maxInstancesPerService: 3, maxInstancesPerNamespace: 5 })
    const register = (service: string, namespace = 'default') => call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service, namespace, port: 3000 } })
    const ok = await Promise.all([register('payments'), register('payments'), register('payments')])
    expect(ok.map((r) => r.status)).toEqual([201, 201, 201])
    const over = await register('payments')
    expect(over.status).toBe(429)
    expect(over.json.error).toEqual({ code: 'MESHLET_ERR_QUOTA_EXCEEDED', message: expect.stringContaining('service default/payments has 3 instances') })
    expect(over.json.error.message).toContain('startControl maxInstancesPerService, meshlet control --max-instances-per-service')
    await register('orders')
    await register('orders')
    const ns = await register('stock')
    expect(ns.status).toBe(429)
    expect(ns.json.error.message).toMatch(/namespace default has 5 instances.*--max-instances-per-namespace/s)
    expect((await register('stock', 'shop')).status).toBe(201)
    // Room again once one leaves.
    expect((await call(server.url, 'DELETE', `/v1/instances/${ok[0]!.json.id}`, { token: JOIN })).status).toBe(200)
    expect((await register('payments')).status).toBe(201)
  })

  it('refuses instance metadata over maxInstanceMetadataBytes with 422 at the field (so a mesh does not retry it)', async () => {
    await using server = await startTestControl({ maxInstanceMetadataBytes: 8 * 1024 })
    expect((await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1, metadata: metadata(7000) } })).status).toBe(201)
    const over = await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1, metadata: metadata(9000) } })
    expect(over.status).toBe(422)
    expect(over.json.error.issues).toEqual([{ path: 'metadata', message: expect.stringContaining('over the 8192-byte quota per instance') }])
    expect(over.json.error.message).toContain('--max-instance-metadata-bytes')
  })

  it('refuses writes past maxStoreBytes, resources and instances alike, and takes them again after deletes', async () => {
    await using server = await startTestControl({ maxStoreBytes: 64 * 1024, maxInstanceMetadataBytes: 32 * 1024 })
    let registered = 0
    let refusal: { status: number; json: { error: { code: string; message: string } } } | undefined
    const ids: string[] = []
    while (refusal === undefined && registered < 100) {
      const r = await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1, metadata: metadata(10_000) } })
      if (r.status === 201) ids.push(r.json.id)
      else refusal = r
      registered++
    }
    // 64 KiB holds six instances of ~10 KiB, not seven.
    expect(ids).toHaveLength(6)
    expect(refusal!.status).toBe(429)
    expect(refusal!.json.error.message).toMatch(/over its 65536-byte quota \(maxStoreBytes\).*--max-store-bytes/s)
    const put = await call(server.url, 'PUT', '/v1/servicepolicies/default/big', { body: policy('big', {}, { labels: bigLabels }) })
    expect(put.status).toBe(429)
    expect(put.json.error.code).toBe('MESHLET_ERR_QUOTA_EXCEEDED')
    for (const id of ids.slice(0, 2)) expect((await call(server.url, 'DELETE', `/v1/instances/${id}`, { token: JOIN })).status).toBe(200)
    expect((await call(server.url, 'PUT', '/v1/servicepolicies/default/big', { body: policy('big', {}, { labels: bigLabels }) })).status).toBe(201)
  })
})

describe('heartbeat reports', () => {
  it('keeps a report typed and bounded: unknown fields dropped, a long one fitted to MAX_REPORT_BYTES, a wrong type or an oversized body refused without renewing', async () => {
    await using server = await startTestControl()
    const { json: reg } = await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1, ttl: '1h' } })
    const heartbeat = (body: unknown) => call(server.url, 'POST', `/v1/instances/${reg.id}/heartbeat`, { token: JOIN, body: body as object })
    const report = async () => (await call(server.url, 'GET', `/v1/instances/${reg.id}`, { token: JOIN })).json.status.report

    expect((await heartbeat({ report: { state: 'serving', junk: 'x'.repeat(50_000) } })).status).toBe(200)
    expect(await report()).toEqual({ state: 'serving' })

    const endpoints = Array.from({ length: 50 }, (_, i) => ({ url: `http://10.0.0.${i}:8080`, latencyMs: 2, inflight: 0, requests: 100, failures: 0, ejected: false }))
    const destinations = Object.fromEntries(Array.from({ length: 8 }, (_, d) => [`svc-${d}`, { breaker: 'closed', endpoints }]))
    expect(JSON.stringify(destinations).length).toBeGreaterThan(5 * MAX_REPORT_BYTES)
    expect((await heartbeat({ report: { state: 'serving', destinations } })).status).toBe(200)
    const fitted = await report()
    expect(Buffer.byteLength(JSON.stringify(fitted))).toBeLessThanOrEqual(MAX_REPORT_BYTES)
    expect(fitted).toMatchObject({ state: 'serving', truncated: true, destinations: { 'svc-0': { endpoints: expect.any(Array) } } })

    const wrong = await heartbeat({ report: { inflight: 'many' } })
    expect(wrong.status).toBe(422)
    expect(wrong.json.error.issues).toEqual([{ path: 'report.inflight', message: expect.any(String) }])
    // 1 MiB of report: refused before it is parsed, as a body over the heartbeat's 64 KiB limit.
    const huge = await heartbeat({ report: { state: 'x'.repeat(1024 * 1024) } })
    expect(huge.status).toBe(413)
    expect(await report()).toEqual(fitted)
  })

  it('ControlClient.heartbeat fits a long report before sending it', async () => {
    await using server = await startTestControl()
    const join = new ControlClient({ url: server.url, token: JOIN })
    const { id } = await join.register({ service: 'a', port: 1 })
    const endpoints = Array.from({ length: 50 }, (_, i) => ({ url: `http://10.0.0.${i}:8080`, latencyMs: 2, inflight: 0, requests: 100, failures: 0, ejected: false }))
    await join.heartbeat(id, { destinations: Object.fromEntries(Array.from({ length: 8 }, (_, d) => [`svc-${d}`, { endpoints }])) })
    const inst = (await join.instances()).items[0]!
    expect(inst.status.report).toMatchObject({ truncated: true })
  })
})

describe('meshlet control flags', () => {
  it('--max-instances-per-service and the other quota flags set the quotas; a bad value is a usage error', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, [CLI, 'control', '--port', '0', '--data', dir, '--max-instances-per-service', '1', '--max-store-bytes', '1MiB'], {
      env: { ...process.env, MESHLET_TOKEN: ADMIN, MESHLET_JOIN_TOKEN: JOIN },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
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
    expect((await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1 } })).status).toBe(201)
    const over = await call(url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'a', port: 1 } })
    expect(over.status).toBe(429)
    expect(over.json.error.message).toContain('has 1 instances')

    const bad = await runCli(['control', '--port', '0', '--data', await tempDir(), '--max-store-bytes', 'lots'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--max-store-bytes lots: expected a positive integer of bytes, optionally with KiB, MiB or GiB')
  })
})
