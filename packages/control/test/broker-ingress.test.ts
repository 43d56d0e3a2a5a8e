/** The broker's ingress on the control endpoint: content modes, refusals with their reasons, the webhook handshake. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ControlServer } from '../src/index.js'
import { removeTempDirs, startTestControl } from './control-harness.js'
import { admin, event, publish } from './broker-harness.js'

let c: ControlServer
beforeAll(async () => {
  c = await startTestControl({ broker: { maxEventSize: 4096 } })
})
afterAll(async () => {
  await c.close()
  await removeTempDirs()
})

async function stored(broker = 'default', namespace = 'default'): Promise<number> {
  return (await c.broker!.backend.stats({ namespace, name: broker })).events
}

describe('broker ingress', () => {
  it('takes a binary, a structured and a batched request, and answers 202 once they are stored', async () => {
    const before = await stored()
    expect((await publish(c.url, event('b1'), { body: '{"a":1}' })).status).toBe(202)
    const structured = JSON.stringify({ specversion: '1.0', id: 's1', source: '/tests', type: 't', data: { a: 2 } })
    expect(await publish(c.url, {}, { body: structured, contentType: 'application/cloudevents+json' })).toMatchObject({ status: 202, json: { accepted: 1, dropped: 0 } })
    const batch = JSON.stringify([1, 2, 3].map((i) => ({ specversion: '1.0', id: `batch-${i}`, source: '/tests', type: 't' })))
    expect(await publish(c.url, {}, { body: batch, contentType: 'application/cloudevents-batch+json' })).toMatchObject({ status: 202, json: { accepted: 3, dropped: 0 } })
    expect(await stored()).toBe(before + 5)
  })

  it('refuses an event it cannot read with 400 and the codec\'s reason, storing nothing', async () => {
    const before = await stored()
    const missingType = await publish(c.url, { specversion: '1.0', id: 'x', source: '/tests' })
    expect(missingType.status).toBe(400)
    expect(missingType.json.error.code).toBe('MESHLET_ERR_EVENT_INVALID')
    expect(missingType.json.error.message).toMatch(/type/)
    const notJson = await publish(c.url, {}, { body: '{"specversion": "1.0",', contentType: 'application/cloudevents+json' })
    expect(notJson.status).toBe(400)
    expect(notJson.json.error.code).toBe('MESHLET_ERR_EVENT_INVALID')
    expect(await stored()).toBe(before)
  })

  it('refuses an event above the size limit with 413', async () => {
    const res = await publish(c.url, event('big'), { body: JSON.stringify({ pad: 'x'.repeat(8000) }) })
    expect(res.status).toBe(413)
    expect(res.json.error.code).toBe('MESHLET_ERR_EVENT_TOO_LARGE')
  })

  it('answers 404 for a broker that does not exist, and takes events once a Broker resource names it', async () => {
    const missing = await publish(c.url, event('n1'), { broker: 'orders' })
    expect(missing.status).toBe(404)
    expect(missing.json.error.message).toContain('broker "orders" does not exist in namespace default')
    await admin(c.url).put({ apiVersion: 'meshlet.dev/v1', kind: 'Broker', metadata: { name: 'orders', namespace: 'default' }, spec: {} } as never)
    expect((await publish(c.url, event('n1'), { broker: 'orders' })).status).toBe(202)
    expect(await stored('orders')).toBe(1)
  })

  it('needs the join (or admin) token', async () => {
    expect((await publish(c.url, event('t1'), { token: null })).status).toBe(401)
    expect((await publish(c.url, event('t1'), { token: c.adminToken })).status).toBe(202)
  })

  it('answers 405 with Allow for other methods, and the CloudEvents webhook handshake on OPTIONS', async () => {
    const get = await publish(c.url, {}, { method: 'GET' })
    expect(get.status).toBe(405)
    expect(get.headers.allow).toBe('POST, OPTIONS')
    const handshake = await publish(c.url, {}, { method: 'OPTIONS', token: null, headers: { 'webhook-request-origin': 'eventemitter.example.com' } })
    expect(handshake.status).toBe(200)
    expect(handshake.headers).toMatchObject({ 'webhook-allowed-origin': 'eventemitter.example.com', 'webhook-allowed-rate': '*', allow: 'POST, OPTIONS' })
  })

  it('serves Trigger and Broker as resources, validated', async () => {
    const bad = await admin(c.url).put({ apiVersion: 'meshlet.dev/v1', kind: 'Trigger', metadata: { name: 'bad', namespace: 'default' }, spec: { broker: 'default' } } as never).catch((e: unknown) => e as { status: number })
    expect(bad).toMatchObject({ status: 422 })
    const kinds = (await (await fetch(`${c.url}/v1/schema`)).json()) as Record<string, unknown>
    expect(JSON.stringify(kinds)).toContain('Trigger')
  })
})
