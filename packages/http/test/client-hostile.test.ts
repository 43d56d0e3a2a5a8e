/**
 * Hostile or odd endpoints: a large body streams through intact, and malformed HTTP from a backend
 * turns into a clear error for that call instead of a crash.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, call, reply, startBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** A raw TCP "HTTP server" that answers every connection with `raw` once the request head arrived. */
async function rawBackend(c: Cleanup, raw: string, endAfter = true): Promise<{ url: string; connections: number }> {
  const sockets = new Set<Socket>()
  const state = { url: '', connections: 0 }
  const server = createNetServer((socket) => {
    state.connections++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    let head = ''
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      head = ''
      if (endAfter) socket.end(raw)
      else socket.write(raw)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  c.defer(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return state
}

describe('client against hostile endpoints', () => {
  it('streams a 10 MB response body to the caller intact', async () => {
    const size = 10 * 1024 * 1024
    const body = Buffer.alloc(size)
    for (let i = 0; i < size; i += 4) body.writeUInt32BE(i, i)
    const expected = createHash('sha256').update(body).digest('hex')
    const backend = await startBackend(cleanup, (req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
      // Written in 256 KiB slices, so it arrives in many chunks.
      let off = 0
      const pump = (): void => {
        while (off < size) {
          const end = Math.min(off + 256 * 1024, size)
          const more = res.write(body.subarray(off, end))
          off = end
          if (!more) return void res.once('drain', pump)
        }
        res.end()
      }
      pump()
    })
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url] } })

    const res = await request('http://payments/blob', { dispatcher: agent })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-length']).toBe(String(size))
    const hash = createHash('sha256')
    let received = 0
    let chunks = 0
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      received += (chunk as Buffer).length
      chunks++
    }
    expect(received).toBe(size)
    expect(hash.digest('hex')).toBe(expected)
    expect(chunks).toBeGreaterThan(1)
    expect(backend.seen.length).toBe(1)
  })

  it('a backend sending a malformed status line yields a clear MeshletError for the call, not a crash', async () => {
    const bad = await rawBackend(cleanup, 'HTTP/1.1 2OO NOT-A-STATUS\r\nwhat: ever\r\n\r\n')
    const good = await startBackend(cleanup, reply(200, {}, 'fine'))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [bad.url] }, orders: { endpoints: [good.url] } })

    const err = await call(agent, 'http://payments/x').catch((e: unknown) => e)
    expect(isMeshletError(err, ErrorCodes.UPSTREAM), String(err)).toBe(true)
    // It names the endpoint and says what was wrong with the response.
    const e = err as Error & { cause?: Error }
    expect(e.message).toContain(bad.url)
    expect(e.message).toMatch(/does not match the HTTP\/1\.1 protocol/)
    expect(e.cause?.name).toBe('HTTPParserError')
    expect(bad.connections).toBe(1)

    // The process and the agent are fine: other destinations keep working.
    expect(await call(agent, 'http://orders/y')).toMatchObject({ status: 200, body: 'fine' })
  })

  it('a response cut off before its declared length fails the body read with an error', async () => {
    const bad = await rawBackend(cleanup, 'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly a little')
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [bad.url] } })

    const res = await request('http://payments/x', { dispatcher: agent })
    expect(res.statusCode).toBe(200)
    const err = await res.body.text().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
    expect(String((err as { code?: string }).code ?? (err as Error).message)).toMatch(/UND_ERR_SOCKET|closed|terminated/i)
  })

  it('a backend sending an oversized header block is refused with an error', async () => {
    const bad = await rawBackend(cleanup, `HTTP/1.1 200 OK\r\nx-junk: ${'a'.repeat(64 * 1024)}\r\ncontent-length: 2\r\n\r\nok`)
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [bad.url] } })

    const err = await call(agent, 'http://payments/x').catch((e: unknown) => e)
    expect(isMeshletError(err), String(err)).toBe(true)
    expect(String((err as Error).message)).toContain(bad.url)
  })
})
