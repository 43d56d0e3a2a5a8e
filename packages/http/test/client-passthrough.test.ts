/**
 * The agent as a drop-in dispatcher: hosts that are not mesh services pass through untouched, and
 * as undici's global dispatcher it makes Node's global fetch meshed.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { fetch as undiciFetch, getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { callScope, DEADLINE_HEADER, ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, call, readAll, reply, startBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

describe('client pass-through', () => {
  it('a host that is not a mesh service reaches its server unchanged, without a meshlet-deadline header', async () => {
    const plain = await startBackend(cleanup, reply(200, {}, 'plain'))
    const meshed = await startBackend(cleanup, reply(200, {}, 'meshed'))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [meshed.url] } })

    // agent.request() with an origin, and undici's request() with a URL.
    const direct = await agent.request({ origin: plain.url, path: '/direct?q=1', method: 'GET', headers: { 'x-app': 'a' } })
    expect(direct.statusCode).toBe(200)
    expect(String(await readAll(direct.body))).toBe('plain')
    const viaUrl = await call(agent, `${plain.url}/by-url`, { headers: { 'x-app': 'b' } })
    expect(viaUrl).toMatchObject({ status: 200, body: 'plain' })

    expect(plain.seen.map((s) => s.path)).toEqual(['/direct?q=1', '/by-url'])
    for (const s of plain.seen) {
      expect(s.headers).not.toHaveProperty(DEADLINE_HEADER)
      expect(s.headers.host).toBe(`127.0.0.1:${plain.port}`)
    }
    expect(plain.seen.map((s) => s.headers['x-app'])).toEqual(['a', 'b'])

    // The mesh service through the same agent does get the deadline (15 s default timeout).
    const t0 = Date.now()
    expect(await call(agent, 'http://payments/charge')).toMatchObject({ status: 200, body: 'meshed' })
    const deadline = Number(meshed.seen[0]!.headers[DEADLINE_HEADER])
    expect(deadline).toBeGreaterThanOrEqual(t0 + 15_000)
    expect(deadline).toBeLessThan(t0 + 16_000)
    expect(plain.seen.length).toBe(2)
  })

  it('setGlobalDispatcher(agent) makes the global fetch meshed; the previous dispatcher is restored', async () => {
    const meshed = await startBackend(cleanup, reply(200, {}, 'meshed'))
    const plain = await startBackend(cleanup, reply(200, {}, 'plain'))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [meshed.url] } })

    const previous = getGlobalDispatcher()
    setGlobalDispatcher(agent)
    cleanup.defer(() => setGlobalDispatcher(previous))

    const res = await globalThis.fetch('http://payments/charge', { method: 'POST', body: 'x' })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('meshed')
    expect(meshed.seen.length).toBe(1)
    expect(meshed.seen[0]!.headers[DEADLINE_HEADER]).toMatch(/^\d+$/)

    // Other hosts still go straight to their servers.
    const other = await globalThis.fetch(`${plain.url}/x`)
    expect(await other.text()).toBe('plain')
    expect(plain.seen[0]!.headers).not.toHaveProperty(DEADLINE_HEADER)
    expect(getGlobalDispatcher()).toBe(agent)
  })

  it('fetch surfaces a mesh failure as TypeError("fetch failed") with the MeshletError as its cause', async () => {
    const meshed = await startBackend(cleanup, reply(200))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [meshed.url] } })

    const err = await callScope.run({ deadline: Date.now() - 1, signal: undefined }, () => undiciFetch('http://payments/x', { dispatcher: agent })).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TypeError)
    expect((err as Error).message).toBe('fetch failed')
    expect(isMeshletError((err as Error).cause, ErrorCodes.DEADLINE)).toBe(true)
    expect(meshed.connections).toBe(0)
  })
})
