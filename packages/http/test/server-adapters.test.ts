/**
 * The inbound stack through each adapter (node:http wrapper, Express, Fastify): the call scope's
 * deadline, the load report, and refusals of malformed, hostile, oversized and past deadlines
 * before the app runs. Real servers on loopback; requests from a plain undici Client.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from 'undici'
import { callScope, ErrorCodes, MAX_INBOUND_DEADLINE_MS } from '@meshlet/core'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'

const LOAD = /^\d\.\d{2}; inflight=\d+$/

describe.each(ADAPTERS)('%s adapter', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  async function setup() {
    const mesh = await meshFor(t, { service: 'orders' })
    const seen: { id: string; deadline: number | undefined; hasSignal: boolean }[] = []
    const srv = await serve(adapter, mesh, [
      {
        method: 'GET',
        path: '/orders/:id',
        handler: ({ params }) => {
          const scope = callScope.getStore()
          seen.push({ id: params.id!, deadline: scope?.deadline, hasSignal: scope?.signal instanceof AbortSignal })
          return { body: { id: params.id } }
        },
      },
    ])
    t.add(() => srv.close())
    const client = new Client(srv.origin)
    t.add(() => client.destroy())
    const get = async (headers: Record<string, string> | string[] = {}, path = '/orders/42') => {
      const res = await client.request({ method: 'GET', path, headers })
      const text = await res.body.text()
      return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error: { code: string; message: string } } }
    }
    return { mesh, srv, seen, get }
  }

  it('runs the app in a call scope holding the inbound deadline, and reports load on the response', async () => {
    const { seen, get } = await setup()
    const deadline = Date.now() + 5000
    const res = await get({ 'meshlet-deadline': String(deadline) })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toEqual({ id: '42' })
    expect(res.headers['meshlet-load']).toMatch(LOAD)
    expect(seen).toEqual([{ id: '42', deadline, hasSignal: true }])

    // No header: no deadline (Infinity), still a load report.
    const plain = await get()
    expect(plain.status).toBe(200)
    expect(plain.headers['meshlet-load']).toMatch(LOAD)
    expect(seen[1]!.deadline).toBe(Infinity)
  })

  it('clamps a far-future deadline from a peer to one day ahead', async () => {
    const { seen, get } = await setup()
    const before = Date.now()
    const res = await get({ 'meshlet-deadline': String(before + 10 * MAX_INBOUND_DEADLINE_MS) })
    expect(res.status).toBe(200)
    const d = seen[0]!.deadline!
    expect(d).toBeGreaterThanOrEqual(before + MAX_INBOUND_DEADLINE_MS)
    expect(d).toBeLessThanOrEqual(Date.now() + MAX_INBOUND_DEADLINE_MS)
  })

  const malformed: [string, Record<string, string> | string[]][] = [
    ['garbage', { 'meshlet-deadline': 'soon' }],
    ['negative', { 'meshlet-deadline': '-5' }],
    ['decimal', { 'meshlet-deadline': '1700000000000.5' }],
    ['exponent', { 'meshlet-deadline': '2e12' }],
    ['empty', { 'meshlet-deadline': '' }],
    ['16 digits', { 'meshlet-deadline': '1'.repeat(16) }],
    ['10 KB of digits', { 'meshlet-deadline': '9'.repeat(10 * 1024) }],
    ['10 KB of garbage', { 'meshlet-deadline': 'x'.repeat(10 * 1024) }],
    ['duplicated header', ['meshlet-deadline', String(Date.now() + 60_000), 'meshlet-deadline', String(Date.now() + 90_000)]],
  ]

  it.each(malformed)('refuses a %s meshlet-deadline with 400 MESHLET_ERR_BAD_HEADER before the app runs, and keeps serving', async (_name, headers) => {
    const { seen, get } = await setup()
    const res = await get(headers)
    expect(res.status).toBe(400)
    expect(res.headers['content-type']).toBe('application/json')
    expect(res.headers['meshlet-rejected']).toBeUndefined()
    const body = res.json()
    expect(body.error.code).toBe(ErrorCodes.BAD_HEADER)
    expect(body.error.message).toMatch(/meshlet-deadline/)
    // A hostile value is not echoed back in full.
    expect(res.text.length).toBeLessThan(1024)
    expect(seen).toHaveLength(0)

    // The refusal keeps the connection: the next request on it is served.
    const next = await get()
    expect(next.status).toBe(200)
    expect(seen).toHaveLength(1)
  })

  it.each([
    ['1 ms after the epoch', () => '1'],
    ['a second ago', () => String(Date.now() - 1000)],
    ['now', () => String(Date.now())],
  ])('refuses a deadline of %s with 504 MESHLET_ERR_DEADLINE without calling the app', async (_name, value) => {
    const { seen, get } = await setup()
    const res = await get({ 'meshlet-deadline': value() })
    expect(res.status).toBe(504)
    expect(res.json().error.code).toBe(ErrorCodes.DEADLINE)
    expect(res.headers['meshlet-rejected']).toBeUndefined()
    expect(seen).toHaveLength(0)
    expect((await get({ 'meshlet-deadline': String(Date.now() + 5000) })).status).toBe(200)
  })

  it('keeps serving new connections after refusing hostile headers', async () => {
    const { srv, seen, get } = await setup()
    for (const [, headers] of malformed) expect((await get(headers)).status).toBe(400)
    const fresh = new Client(srv.origin)
    t.add(() => fresh.destroy())
    const res = await fresh.request({ method: 'GET', path: '/orders/7' })
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual({ id: '7' })
    expect(seen.map((s) => s.id)).toEqual(['7'])
  })

  it('leaves a header over the node:http limit to node (431) and never reaches the app', async () => {
    const { srv, seen } = await setup()
    const big = new Client(srv.origin)
    t.add(() => big.destroy())
    const res = await big.request({ method: 'GET', path: '/orders/1', headers: { 'meshlet-deadline': '1'.repeat(20 * 1024) } })
    await res.body.dump()
    expect(res.statusCode).toBe(431)
    expect(seen).toHaveLength(0)
    const fresh = new Client(srv.origin)
    t.add(() => fresh.destroy())
    expect((await fresh.request({ method: 'GET', path: '/orders/2' })).statusCode).toBe(200)
  })
})
