/**
 * Trigger receivers on real node:http, Express and Fastify servers, each behind the mesh's server
 * stack, sent deliveries with undici as the broker sends them: binary mode (the dispatcher's) and
 * structured mode; a reply comes back in binary mode, nothing → 202, a throwing handler → 500 with
 * the process still serving, a malformed delivery → 400 with the reason.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh } from '@meshlet/core'
import { request } from 'undici'
import { decodeHttpEvents, encodeBinary, encodeStructured, type MeshEvents } from '../src/index.js'
import { Inbox, SERVER_KINDS, serveReceivers, Teardown, type ServerKind } from './client-harness.js'

const orderCreated = { specversion: '1.0', id: 'o-1', source: '/shop/orders', type: 'order.created', datacontenttype: 'application/json', data: { order: 1, cents: 250 } }

async function post(origin: string, path: string, message: { headers: Record<string, string>; body: Uint8Array | string }) {
  const res = await request(`${origin}${path}`, { method: 'POST', headers: message.headers, body: message.body })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') }
}

describe.each(SERVER_KINDS)('receivers on %s', (kind: ServerKind) => {
  const t = new Teardown()
  afterEach(() => t.run())

  async function receiving(declare: (ev: MeshEvents) => void) {
    const mesh = await createMesh({ service: 'billing', namespace: 'shop', shutdownSignals: false })
    t.add(() => mesh.close())
    return serveReceivers(t, kind, mesh, declare)
  }

  it('hands a binary-mode delivery to the handler exactly as sent, and answers 202 when it returns nothing', async () => {
    const inbox = new Inbox()
    const { origin, ev } = await receiving((ev) => ev.trigger('bill', { filters: [{ cesql: "type = 'order.created'" }] }, (event) => inbox.add(event)))
    const res = await post(origin, '/_meshlet/events/bill', encodeBinary({ ...orderCreated, subject: 'ü space' }))
    expect(res.status).toBe(202)
    expect(inbox.events).toHaveLength(1)
    const got = inbox.events[0]!
    expect({ id: got.id, source: got.source, type: got.type, subject: got.subject, data: got.data }).toEqual({ id: 'o-1', source: '/shop/orders', type: 'order.created', subject: 'ü space', data: { order: 1, cents: 250 } })
    // A receiver invents nothing: the delivery had no time, so the event has none.
    expect(got.time).toBeUndefined()
    expect(ev.inspect().triggers).toMatchObject([{ name: 'bill', broker: 'default', path: '/_meshlet/events/bill', received: 1, replied: 0, failed: 0, invalid: 0 }])
  })

  it('takes a structured-mode delivery too', async () => {
    const inbox = new Inbox()
    const { origin } = await receiving((ev) => ev.trigger('bill', {}, (event) => inbox.add(event)))
    const res = await post(origin, '/_meshlet/events/bill', encodeStructured(orderCreated))
    expect(res.status).toBe(202)
    expect(inbox.events[0]).toMatchObject({ id: 'o-1', data: { order: 1, cents: 250 } })
  })

  it('answers a returned event with 200 and the reply in binary mode (plain attributes are completed like a publish)', async () => {
    const { origin, ev } = await receiving((ev) =>
      ev.trigger('bill', {}, async (event, ctx) => {
        expect(ctx.signal.aborted).toBe(false)
        return { type: 'invoice.created', data: { order: (event.data as { order: number }).order } }
      }),
    )
    const res = await post(origin, '/_meshlet/events/bill', { ...encodeBinary(orderCreated), headers: { ...encodeBinary(orderCreated).headers, 'meshlet-delivery-count': '2' } })
    expect(res.status).toBe(200)
    expect(res.headers['ce-type']).toBe('invoice.created')
    const reply = decodeHttpEvents({ headers: res.headers, body: res.body }).events[0]!
    expect(reply).toMatchObject({ type: 'invoice.created', source: '/shop/billing', specversion: '1.0', data: { order: 1 } })
    expect(reply.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(typeof reply.time).toBe('string')
    expect(ev.inspect().triggers[0]).toMatchObject({ received: 1, replied: 1 })
  })

  it('passes the delivery count the broker sends', async () => {
    const counts: (number | undefined)[] = []
    const { origin } = await receiving((ev) => ev.trigger('bill', {}, (_e, ctx) => void counts.push(ctx.deliveryCount)))
    const message = encodeBinary(orderCreated)
    await post(origin, '/_meshlet/events/bill', { ...message, headers: { ...message.headers, 'meshlet-delivery-count': '3' } })
    await post(origin, '/_meshlet/events/bill', message)
    expect(counts).toEqual([3, undefined])
  })

  it('answers 500 with a short text when the handler throws or rejects, and keeps serving', async () => {
    let calls = 0
    const { origin, ev } = await receiving((ev) =>
      ev.trigger('bill', {}, (event) => {
        calls++
        if (event.id === 'sync') throw new Error('ledger is locked\nstack details that stay in the process')
        return Promise.reject(new TypeError('x'.repeat(1000)))
      }),
    )
    const sync = await post(origin, '/_meshlet/events/bill', encodeBinary({ ...orderCreated, id: 'sync' }))
    expect(sync.status).toBe(500)
    expect(sync.text).toBe('trigger "bill" failed: ledger is locked')
    const rejected = await post(origin, '/_meshlet/events/bill', encodeBinary(orderCreated))
    expect(rejected.status).toBe(500)
    expect(rejected.text.length).toBeLessThanOrEqual(200)
    expect(calls).toBe(2)
    expect(ev.inspect().triggers[0]).toMatchObject({ received: 2, failed: 2 })
    // The process and the server are fine.
    expect((await post(origin, '/_meshlet/events/bill', encodeBinary({ ...orderCreated, id: 'sync' }))).status).toBe(500)
  })

  it('refuses a malformed delivery with 400 and the reason, without calling the handler', async () => {
    let calls = 0
    const { origin, ev } = await receiving((ev) => ev.trigger('bill', {}, () => void calls++))
    const noId = encodeBinary(orderCreated)
    delete noId.headers['ce-id']
    const missing = await post(origin, '/_meshlet/events/bill', noId)
    expect(missing.status).toBe(400)
    expect(JSON.parse(missing.text)).toMatchObject({ error: { code: 'MESHLET_ERR_EVENT_INVALID', message: expect.stringMatching(/id/) } })
    const garbage = await post(origin, '/_meshlet/events/bill', { headers: { 'content-type': 'application/cloudevents+json' }, body: '{"specversion":"1.0",' })
    expect(garbage.status).toBe(400)
    const batch = await post(origin, '/_meshlet/events/bill', { headers: { 'content-type': 'application/cloudevents-batch+json' }, body: JSON.stringify([orderCreated, { ...orderCreated, id: 'o-2' }]) })
    expect(batch.status).toBe(400)
    expect(batch.text).toMatch(/carries one event/)
    expect(calls).toBe(0)
    expect(ev.inspect().triggers[0]).toMatchObject({ received: 0, invalid: 3 })
  })

  it('answers 404 for a trigger it does not have and 405 for other methods', async () => {
    const { origin } = await receiving((ev) => ev.trigger('bill', {}, () => undefined))
    expect((await post(origin, '/_meshlet/events/ship', encodeBinary(orderCreated))).status).toBe(404)
    const get = await request(`${origin}/_meshlet/events/bill`)
    await get.body.dump()
    expect(get.statusCode).toBe(kind === 'fastify' ? 404 : 405)
  })

  it('answers 503 once events(mesh) is closed, so the broker delivers again later', async () => {
    const { origin, ev } = await receiving((ev) => ev.trigger('bill', {}, () => undefined))
    await ev.close()
    const res = await post(origin, '/_meshlet/events/bill', encodeBinary(orderCreated))
    expect(res.status).toBe(503)
  })

  it.runIf(kind !== 'node:http')('leaves the app\'s own routes alone', async () => {
    const { origin } = await receiving((ev) => ev.trigger('bill', {}, () => undefined))
    const res = await request(`${origin}/hello`)
    expect(await res.body.text()).toBe('hello')
  })
})

describe('trigger declarations', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('are validated, naming the field: a CESQL expression that does not parse, a bad name, a second trigger of the same name', async () => {
    const mesh = await createMesh({ service: 'billing', shutdownSignals: false })
    t.add(() => mesh.close())
    const { events } = await import('../src/index.js')
    const ev = events(mesh)
    t.add(() => ev.close())
    expect(() => ev.trigger('bill', { filters: [{ cesql: "type = 'x" }] }, () => undefined)).toThrow(/filters\[0\]\.cesql/)
    expect(() => ev.trigger('Bill_1', {}, () => undefined)).toThrow(/name/)
    expect(() => ev.trigger('bill', { delivery: { backoffDelay: '2s' } }, () => undefined)).toThrow(/delivery\.backoffDelay/)
    ev.trigger('bill', {}, () => undefined)
    expect(() => ev.trigger('bill', {}, () => undefined)).toThrow(expect.objectContaining({ code: 'MESHLET_ERR_CONFIG_INVALID' }))
    // Across events() of one mesh, too: the mesh has one registration.
    const other = events(mesh)
    t.add(() => other.close())
    expect(() => other.trigger('bill', {}, () => undefined)).toThrow(/declared twice/)
  })
})
