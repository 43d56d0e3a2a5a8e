/**
 * Every adapter registers its server with the control endpoint once it listens (the port it got),
 * and gives the lease back on mesh.close(): node:http through createMeshServer, Express through
 * meshletServer, Fastify through the plugin. The control endpoint is a small fake on loopback that
 * records the instance API calls.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ADAPTERS, meshFor, serve, Teardown, within, type AdapterName } from './fixtures/server-harness.js'

interface InstanceCall {
  method: string
  path: string
  body: Record<string, unknown> | undefined
}

/** Answers POST /v1/instances with a lease and DELETE with 200; the watch gets 503 (the mesh starts without it). */
async function fakeControl(t: Teardown): Promise<{ url: string; next: () => Promise<InstanceCall> }> {
  const calls: InstanceCall[] = []
  const waiters: ((c: InstanceCall) => void)[] = []
  const record = (c: InstanceCall) => {
    const w = waiters.shift()
    if (w !== undefined) w(c)
    else calls.push(c)
  }
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    return chunks.length === 0 ? undefined : (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>)
  }
  const server: Server = createServer((req, res) => {
    void read(req).then((body) => {
      const path = req.url ?? '/'
      if (!path.startsWith('/v1/instances')) return res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"MESHLET_ERR_UNAVAILABLE","message":"fake"}}')
      if (!path.endsWith('/heartbeat')) record({ method: req.method ?? '', path, body })
      const instance = { metadata: { name: 'i-1' }, spec: body ?? {} }
      res.writeHead(req.method === 'POST' && path === '/v1/instances' ? 201 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id: 'i-1', ttl: 60_000, expiresAt: new Date(Date.now() + 60_000).toISOString(), instance }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.add(() => new Promise((r) => server.close(r)))
  t.add(() => server.closeAllConnections())
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    next: () => {
      const c = calls.shift()
      return c !== undefined ? Promise.resolve(c) : new Promise((resolve) => waiters.push(resolve))
    },
  }
}

describe.each(ADAPTERS)('%s adapter registration', (adapter: AdapterName) => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('registers the server on the port it listens on, and deregisters on mesh.close()', async () => {
    const control = await fakeControl(t)
    const mesh = await meshFor(t, { service: 'orders', control: control.url, drain: { delay: 0 } })
    const srv = await serve(adapter, mesh, [{ method: 'GET', path: '/x', handler: () => ({ body: {} }) }])
    t.add(() => srv.close())
    const registered = await within(control.next(), 5000, 'the registration')
    expect(registered).toMatchObject({ method: 'POST', path: '/v1/instances', body: { service: 'orders', port: srv.port, protocols: ['http'] } })
    await mesh.close()
    expect(await within(control.next(), 5000, 'the deregistration')).toMatchObject({ method: 'DELETE', path: '/v1/instances/i-1' })
  })
})
