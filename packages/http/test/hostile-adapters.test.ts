/**
 * Hostile request heads at the node:http, Express and Fastify adapters, written byte by byte on a
 * raw socket: junk in meshlet-deadline (bytes beyond ASCII, signs, exponents, two of them), one
 * huge header, thousands of small ones. Each is refused (400, 504, or node's 431) without the app
 * running, or served with a sane deadline; the server keeps serving with nothing in flight.
 */
import { once } from 'node:events'
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { callScope } from '@meshlet/core'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'

/** Sends one request head as latin1 bytes (`connection: close`) and returns the status line's code. */
async function exchange(port: number, headerLines: readonly string[]): Promise<number> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  const closed = once(socket, 'close')
  socket.end(Buffer.from(['GET /orders/1 HTTP/1.1', 'host: 127.0.0.1', 'connection: close', ...headerLines].join('\r\n') + '\r\n\r\n', 'latin1'))
  await closed
  const head = Buffer.concat(chunks).toString('latin1')
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
}

describe.each(ADAPTERS)('%s adapter under hostile request heads', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  async function setup() {
    const mesh = await meshFor(t, { service: 'orders' })
    const deadlines: number[] = []
    const srv = await serve(adapter, mesh, [{ method: 'GET', path: '/orders/:id', handler: () => (deadlines.push(callScope.getStore()?.deadline ?? NaN), { body: { ok: true } }) }])
    t.add(() => srv.close())
    return { mesh, port: srv.port, deadlines }
  }

  it('refuses junk in meshlet-deadline 400 (a past one 504) before the app runs', async () => {
    const { mesh, port, deadlines } = await setup()
    const later = String(Date.now() + 30_000)
    const junk = ['soon', '\xff\xfe', '-1', '1e3', '0x10', '12345678901234567890', '1.5', `${later} ${later}`, '\x7f']
    for (const value of junk) expect(await exchange(port, [`meshlet-deadline: ${value}`]), JSON.stringify(value)).toBe(400)
    // Two headers: node joins them with ", ", which is no deadline.
    expect(await exchange(port, [`meshlet-deadline: ${later}`, `meshlet-deadline: ${later}`])).toBe(400)
    // Surrounding whitespace is not part of a field value (RFC 9110): " 1 " is the epoch's first millisecond, long past.
    expect(await exchange(port, ['meshlet-deadline:  1 '])).toBe(504)
    expect(deadlines).toEqual([])
    expect(await exchange(port, [`meshlet-deadline: ${later}`])).toBe(200)
    expect(deadlines).toEqual([Number(later)])
    expect(mesh.inbound.inflight).toBe(0)
  })

  it('refuses one 100 KiB header with 431 before the stack, and keeps serving', async () => {
    const { mesh, port, deadlines } = await setup()
    // Node 20 answers 431; Node 24 may reset the connection instead: either way nothing reaches the stack.
    const refused = (lines: string[]) => exchange(port, lines).catch((err: NodeJS.ErrnoException) => err.code)
    expect([431, 'ECONNRESET']).toContain(await refused([`x-big: ${'a'.repeat(100 * 1024)}`]))
    expect([431, 'ECONNRESET']).toContain(await refused(Array.from({ length: 5000 }, (_, i) => `x-h${i}: ${'b'.repeat(8)}`)))
    expect(deadlines).toEqual([])
    expect(await exchange(port, [])).toBe(200)
    expect(mesh.inbound.inflight).toBe(0)
  })

  it('over 1,000 headers: Node 20 keeps the first 1,000, so a deadline after them is not seen; Node 24 refuses the request', async () => {
    const { mesh, port, deadlines } = await setup()
    const later = Date.now() + 30_000
    // 1,400 stays under the 16 KiB maxHeaderSize.
    const many = Array.from({ length: 1400 }, (_, i) => `h${i}: 1`)
    if (Number(process.versions.node.split('.')[0]) >= 24) {
      expect(await exchange(port, [`meshlet-deadline: ${later}`, ...many])).toBe(431)
      expect(deadlines).toEqual([])
    } else {
      expect(await exchange(port, [`meshlet-deadline: ${later}`, ...many])).toBe(200)
      // Past node's 1,000-header cut the header is dropped before meshlet sees it: the call runs with no deadline.
      expect(await exchange(port, [...many, `meshlet-deadline: ${later}`])).toBe(200)
      expect(deadlines).toEqual([later, Infinity])
    }
    expect(mesh.inbound.inflight).toBe(0)
  })
})
