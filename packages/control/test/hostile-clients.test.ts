/**
 * Clients that hold connections or send junk: the endpoint's documented limits hold (headers
 * within headersTimeout, whole requests within requestTimeout, a connection cap) and what is not
 * a failure of the endpoint is not logged as one. The limits are shortened so that each test
 * awaits the connection's close; with Node's 30s check interval the closes would not come in time.
 */
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ControlServer, Logger } from '../src/index.js'
import { ADMIN, call, removeTempDirs, startTestControl } from './control-harness.js'

const logged: { level: string; message: string }[] = []
const log: Logger = {
  info: (message) => logged.push({ level: 'info', message }),
  warn: (message) => logged.push({ level: 'warn', message }),
  error: (message) => logged.push({ level: 'error', message }),
  debug: (message) => logged.push({ level: 'debug', message }),
}

let server: ControlServer
beforeAll(async () => {
  server = await startTestControl({ headersTimeout: 300, requestTimeout: 600, maxConnections: 60, log })
})
afterAll(async () => {
  await server.close()
  await removeTempDirs()
})

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(server.port, '127.0.0.1', () => resolve(s))
    s.on('error', reject)
  })
}

/** Everything the server sent until it closed the connection. */
function untilClosed(s: Socket): Promise<string> {
  let text = ''
  s.setEncoding('utf8')
  s.on('data', (d: string) => (text += d))
  s.on('error', () => {})
  return new Promise((resolve) => s.on('close', () => resolve(text)))
}

describe('slow and greedy clients', () => {
  it('cuts 50 slowloris connections (headers never finished) once headersTimeout passes', async () => {
    const sockets = await Promise.all(Array.from({ length: 50 }, () => open()))
    const closed = sockets.map((s) => untilClosed(s))
    for (const s of sockets) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ')
    const answers = await Promise.all(closed)
    for (const a of answers) expect(a).toMatch(/^HTTP\/1\.1 408/)
  })

  it('answers 408 to a body that trickles past requestTimeout', async () => {
    const s = await open()
    const closed = untilClosed(s)
    s.write(`PUT /v1/servicepolicies/default/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`)
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  it('refuses connections over maxConnections at once, and serves again when they go', async () => {
    const held = await Promise.all(Array.from({ length: 60 }, () => open()))
    const extra = await open()
    await untilClosed(extra) // closed by the server without an answer
    for (const s of held) s.destroy()
    // The server counts a connection until it sees the close; poll until it has seen enough.
    await expect.poll(async () => (await call(server.url, 'GET', '/healthz', { token: null })).status, { timeout: 5_000 }).toBe(200)
  })
})

describe('junk that is not the endpoint failing', () => {
  it('answers 415 to a JSON body sent as text/plain, naming the type to use', async () => {
    const r = await call(server.url, 'PUT', '/v1/servicepolicies/default/p', { body: '{}', headers: { 'content-type': 'text/plain' } })
    expect(r.status).toBe(415)
    expect(r.json.error.code).toBe('MESHLET_ERR_UNSUPPORTED_MEDIA_TYPE')
    expect(r.json.error.message).toContain('application/json')
  })

  it('takes application/json with parameters and +json types', async () => {
    const body = JSON.stringify({ apiVersion: 'meshlet.dev/v1', kind: 'ServicePolicy', metadata: { name: 'p' }, spec: { service: 'p' } })
    for (const type of ['application/json; charset=utf-8', 'Application/JSON', 'application/merge-patch+json']) {
      const r = await call(server.url, 'PUT', '/v1/servicepolicies/default/p', { body, headers: { 'content-type': type } })
      expect(r.status, type).toBeLessThan(300)
    }
  })

  it('logs a client that disconnects mid-body at debug level as 499, not as an error', async () => {
    logged.length = 0
    const s = await open()
    const gone = untilClosed(s)
    s.write(`PUT /v1/servicepolicies/default/gone HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":`)
    // A round trip on another connection: by its answer the server has parsed these headers and is reading the body.
    await call(server.url, 'GET', '/healthz', { token: null })
    s.destroy()
    await gone
    await expect.poll(() => logged.filter((l) => l.level === 'debug' && l.message.startsWith('499 PUT')).length, { timeout: 5_000 }).toBe(1)
    expect(logged.filter((l) => l.level === 'error')).toEqual([])
  })
})
