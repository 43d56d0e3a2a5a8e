/**
 * The servers meshlet makes for an app cut slowloris connections: headers must arrive within
 * headersTimeout, checked every second (Node checks every 30 s, so a 60 s limit held for 90 s).
 * The test shortens headersTimeout and awaits each connection's close; with Node's check interval
 * the closes would come after the test's timeout.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { createMeshServer, MESH_SERVER_DEFAULTS } from '../src/index.js'
import { meshletServer } from '../src/express.js'
import { meshFor, Teardown } from './fixtures/server-harness.js'

function slowloris(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '))
    let text = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => (text += d))
    s.on('error', reject)
    s.on('close', () => resolve(text))
  })
}

describe('servers meshlet creates', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('default to a 10 s headersTimeout and Node\'s 300 s requestTimeout, and keep what the app passes', async () => {
    const mesh = await meshFor(t, { service: 'web' })
    const plain = createMeshServer(mesh, (_req, res) => res.end('ok'))
    expect(plain.headersTimeout).toBe(MESH_SERVER_DEFAULTS.headersTimeout)
    expect(plain.requestTimeout).toBe(300_000)
    const tuned = meshletServer(mesh, express(), { headersTimeout: 2_000 })
    expect(tuned.headersTimeout).toBe(2_000)
  })

  it.each(['node:http', 'express'] as const)('%s: cuts 20 slowloris connections once headersTimeout passes', async (kind) => {
    const mesh = await meshFor(t, { service: 'web' })
    const server = kind === 'node:http' ? createMeshServer(mesh, (_req, res) => res.end('ok'), { server: { headersTimeout: 300 } }) : meshletServer(mesh, express(), { headersTimeout: 300 })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const answers = await Promise.all(Array.from({ length: 20 }, () => slowloris(port)))
    for (const a of answers) expect(a).toMatch(/^HTTP\/1\.1 408/)
  })
})
