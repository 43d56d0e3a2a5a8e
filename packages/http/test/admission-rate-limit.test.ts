/**
 * The local rate limit through each server adapter, real servers on loopback: the server's token
 * bucket admits about burst + rps × seconds of a closed-loop flood (within a tolerance: timers and
 * the loopback are real), refusals are 429 + Retry-After + MESHLET_ERR_RATE_LIMITED; per-caller
 * buckets key on the client address by default, never on the caller-set meshlet-caller header, or
 * on what `callerKey` returns; health paths are never limited.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { ErrorCodes, type MeshOptions } from '@meshlet/core'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'

interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: { error?: { code: string } }
}

describe.each(ADAPTERS)('%s adapter: local rate limit', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  async function setup(admission: NonNullable<MeshOptions['admission']>) {
    const mesh = await meshFor(t, { service: 'orders', admission })
    const ok = () => ({ body: { ok: true } })
    const srv = await serve(adapter, mesh, [
      { method: 'GET', path: '/orders', handler: ok },
      { method: 'GET', path: '/healthz', handler: ok },
    ])
    t.add(() => srv.close())
    const agent = new Agent({ connections: 16 })
    t.add(() => agent.destroy())
    const get = async (path = '/orders', headers: Record<string, string> = {}): Promise<Res> => {
      const r = await request(`${srv.origin}${path}`, { dispatcher: agent, headers })
      return { status: r.statusCode, headers: r.headers, body: (await r.body.json()) as Res['body'] }
    }
    return { mesh, get }
  }

  it('admits about burst + rps × elapsed seconds of a flood, refusing the rest with 429 + Retry-After', async () => {
    const RPS = 50
    const BURST = 5
    const { mesh, get } = await setup({ rateLimit: { rps: RPS, burst: BURST } })
    let admitted = 0
    let refused: Res | undefined
    const t0 = performance.now()
    const worker = async () => {
      while (performance.now() - t0 < 1000) {
        const r = await get()
        if (r.status === 200) admitted++
        else refused ??= r
      }
    }
    await Promise.all(Array.from({ length: 4 }, worker))
    const seconds = (performance.now() - t0) / 1000
    const expected = BURST + RPS * seconds
    expect(Math.abs(admitted - expected)).toBeLessThanOrEqual(Math.max(3, expected * 0.1))
    expect(refused).toBeDefined()
    expect(refused!.status).toBe(429)
    expect(refused!.headers['retry-after']).toBe('1')
    expect(refused!.headers['meshlet-rejected']).toBe('1')
    expect(refused!.body.error?.code).toBe(ErrorCodes.RATE_LIMITED)
    expect(mesh.inspect().inbound.admission.rejected.rate_limit).toBeGreaterThan(0)
    // Health checks are never limited.
    expect((await get('/healthz')).status).toBe(200)
  })

  it('per caller: keyed on the client address by default, so a forged meshlet-caller header changes nothing', async () => {
    const { mesh, get } = await setup({ rateLimit: { perCaller: { rps: 0.01, burst: 3 } } })
    const statuses: number[] = []
    for (const who of ['a', 'b', 'c', 'd', 'e']) statuses.push((await get('/orders', { 'meshlet-caller': who })).status)
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    expect(mesh.inspect().inbound.admission.rejected).toEqual({ rate_limit_caller: 2 })
  })

  it('per caller: keyed on what callerKey returns (here a tenant header a trusted gateway sets)', async () => {
    const { get } = await setup({ rateLimit: { perCaller: { rps: 0.01, burst: 2 }, callerKey: (c) => c.headers['x-tenant'] as string | undefined } })
    const statuses = async (tenant: string) => [(await get('/orders', { 'x-tenant': tenant })).status, (await get('/orders', { 'x-tenant': tenant })).status, (await get('/orders', { 'x-tenant': tenant })).status]
    expect(await statuses('acme')).toEqual([200, 200, 429])
    expect(await statuses('globex')).toEqual([200, 200, 429])
    // No key: only a server-wide bucket would apply, and there is none.
    for (let i = 0; i < 5; i++) expect((await get()).status).toBe(200)
  })
})
