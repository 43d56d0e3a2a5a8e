/**
 * publish() and trigger() against a real control endpoint and its embedded broker: the published
 * event reaches a trigger of another service (through the dispatcher and the mesh), completed with
 * the publisher's id/source/specversion/time; a CESQL filter keeps other events out; a list goes as
 * one batch; a reply goes back into the broker; triggers are advertised in the registration; and
 * publish fails with stable codes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ControlClient, createMesh, isMeshletError } from '@meshlet/core'
import { CloudEvent } from 'cloudevents'
import { events } from '../src/index.js'
import { Inbox, JOIN, meshOf, serveReceivers, startTestControl, tempDir, Teardown, triggerReady } from './client-harness.js'

const quickRetries = { retry: 10, backoffDelay: 'PT0.05S' }

describe('publish and trigger through the broker', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  async function setup() {
    // One delivery at a time per trigger, so deliveries come in the broker's order.
    const control = await startTestControl(t, { dataDir: await tempDir(t), broker: { maxInFlight: 1 } })
    const publisher = events(await meshOf(t, control, 'orders'))
    t.add(() => publisher.close())
    return { control, publisher }
  }

  it('delivers a published event to the trigger whose CESQL filter it passes, completed by the publisher', async () => {
    const { control, publisher } = await setup()
    const inbox = new Inbox()
    const audit = await meshOf(t, control, 'audit')
    await serveReceivers(t, 'node:http', audit, (ev) => ev.trigger('big-orders', { filters: [{ cesql: "type = 'order.created' AND cents > 1000" }], delivery: quickRetries }, (e) => inbox.add(e)))
    await triggerReady(control, 'big-orders')

    await publisher.publish({ type: 'order.created', data: { order: 1 }, cents: 10 })
    await publisher.publish(new CloudEvent({ type: 'order.cancelled', source: '/elsewhere', cents: 5000 }))
    await publisher.publish({ type: 'order.created', data: { order: 3 }, cents: 5000, subject: 'order 3' })
    await inbox.count(1)
    expect(inbox.events).toHaveLength(1)
    const got = inbox.events[0]!
    // An extension travels as a ce- header in binary mode: a string on arrival (CESQL cast it for the filter).
    expect(got).toMatchObject({ type: 'order.created', source: '/shop/orders', specversion: '1.0', subject: 'order 3', cents: '5000', data: { order: 3 } })
    expect(got.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(Date.parse(got.time!)).not.toBeNaN()
  })

  it('sends a list as one batch, keeps a CloudEvent\'s own attributes, and lands on Express and Fastify receivers', async () => {
    const { control, publisher } = await setup()
    const onExpress = new Inbox()
    const onFastify = new Inbox()
    await serveReceivers(t, 'express', await meshOf(t, control, 'mailer'), (ev) => ev.trigger('mail', { filter: { attributes: { type: 'order.created' } }, delivery: quickRetries }, (e) => onExpress.add(e)))
    await serveReceivers(t, 'fastify', await meshOf(t, control, 'stock'), (ev) => ev.trigger('stock', { filters: [{ prefix: { type: 'order.' } }], delivery: quickRetries }, (e) => onFastify.add(e)))
    await triggerReady(control, 'mail')
    await triggerReady(control, 'stock')

    const own = new CloudEvent({ id: 'fixed-id', source: '/legacy/orders', type: 'order.created', time: '2026-01-01T00:00:00.000Z', data: { order: 7 } })
    await publisher.publish([own, { type: 'order.created', data: { order: 8 } }, { type: 'order.paid', data: { order: 7 } }])
    await onExpress.count(2)
    await onFastify.count(3)
    expect(onExpress.events.map((e) => e.data)).toEqual([{ order: 7 }, { order: 8 }])
    expect(onExpress.events[0]).toMatchObject({ id: 'fixed-id', source: '/legacy/orders', time: '2026-01-01T00:00:00.000Z' })
    expect(onFastify.events.map((e) => e.type)).toEqual(['order.created', 'order.created', 'order.paid'])
  })

  it('puts a handler\'s reply back into the broker, where another trigger gets it', async () => {
    const { control, publisher } = await setup()
    const invoices = new Inbox()
    await serveReceivers(t, 'node:http', await meshOf(t, control, 'billing'), (ev) => {
      ev.trigger('bill', { filters: [{ exact: { type: 'order.created' } }], delivery: quickRetries }, (e) => ({ type: 'invoice.created', data: { order: (e.data as { order: number }).order } }))
      ev.trigger('file-invoice', { filters: [{ exact: { type: 'invoice.created' } }], delivery: quickRetries }, (e) => invoices.add(e))
    })
    await triggerReady(control, 'bill')
    await triggerReady(control, 'file-invoice')
    await publisher.publish({ type: 'order.created', data: { order: 42 } })
    await invoices.count(1)
    expect(invoices.events[0]).toMatchObject({ type: 'invoice.created', source: '/shop/billing', data: { order: 42 } })
  })

  it('advertises its triggers in the registration, and a trigger added after registering replaces the lease', async () => {
    const { control } = await setup()
    const mesh = await meshOf(t, control, 'audit')
    const { ev } = await serveReceivers(t, 'node:http', mesh, (ev) => ev.trigger('first', { filters: [{ cesql: "type LIKE 'order.%'" }] }, () => undefined))
    const client = new ControlClient({ url: control.url, token: JOIN })
    await triggerReady(control, 'first')
    const before = (await client.instances({ service: 'audit', namespace: 'shop' })).items
    expect(before).toHaveLength(1)
    expect(before[0]!.spec.triggers).toEqual([{ name: 'first', broker: 'default', path: '/_meshlet/events/first', filters: [{ cesql: "type LIKE 'order.%'" }] }])

    ev.trigger('second', { delivery: { retry: 2, backoffPolicy: 'linear', backoffDelay: 'PT1S' } }, () => undefined)
    await triggerReady(control, 'second')
    const after = (await client.instances({ service: 'audit', namespace: 'shop' })).items
    expect(after).toHaveLength(1)
    expect(after[0]!.metadata.name).not.toBe(before[0]!.metadata.name)
    expect(after[0]!.metadata.name).toBe(mesh.inspect().control?.lease)
    expect(after[0]!.spec.triggers?.map((x) => x.name)).toEqual(['first', 'second'])
    expect(after[0]!.spec.triggers?.[1]).toMatchObject({ delivery: { retry: 2, backoffPolicy: 'linear', backoffDelay: 'PT1S' } })

    // Closing events(mesh) withdraws its triggers from the registration.
    await ev.close()
    await triggerGone(client, 'audit')
  })
})

async function triggerGone(client: ControlClient, service: string): Promise<void> {
  const { vi } = await import('vitest')
  await vi.waitFor(
    async () => {
      const items = (await client.instances({ service, namespace: 'shop' })).items
      if (items.length !== 1 || items[0]!.spec.triggers !== undefined) throw new Error('still advertised')
    },
    { timeout: 10_000, interval: 25 },
  )
}

describe('publish errors', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('refuses an invalid event before sending it: MESHLET_ERR_EVENT_INVALID naming the attribute', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const ev = events(await meshOf(t, control, 'orders'))
    t.add(() => ev.close())
    const noType = await ev.publish({ data: 1 } as never).catch((e: unknown) => e)
    expect(isMeshletError(noType, 'MESHLET_ERR_EVENT_INVALID')).toBe(true)
    expect((noType as Error).message).toMatch(/type/)
    const badSource = await ev.publish({ type: 'x', source: '' }).catch((e: unknown) => e)
    expect(isMeshletError(badSource, 'MESHLET_ERR_EVENT_INVALID')).toBe(true)
    const huge = await ev.publish({ type: 'x', data: 'x'.repeat(70_000) }).catch((e: unknown) => e)
    expect(isMeshletError(huge, 'MESHLET_ERR_EVENT_TOO_LARGE')).toBe(true)
  })

  it('passes on the ingress\'s refusal: a broker that does not exist is MESHLET_ERR_NOT_FOUND, not retried', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const ev = events(await meshOf(t, control, 'orders'))
    t.add(() => ev.close())
    const err = await ev.publish({ type: 'x' }, { broker: 'nope' }).catch((e: unknown) => e)
    expect(isMeshletError(err)).toBe(true)
    expect((err as { code: string }).code).toBe('MESHLET_ERR_NOT_FOUND')
    expect((err as Error).message).toMatch(/Broker "nope" refused the event \(404\)/)
  })

  it('a wrong token is the ingress\'s refusal too', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const ev = events(await meshOf(t, control, 'orders', { token: 'not-the-token' }))
    t.add(() => ev.close())
    const err = await ev.publish({ type: 'x' }).catch((e: unknown) => e)
    expect((err as { code: string }).code).toBe('MESHLET_ERR_UNAUTHENTICATED')
  })

  it('tries an unreachable broker again until publishTimeout, then fails MESHLET_ERR_BROKER_UNAVAILABLE naming the broker and the cause', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const url = control.url
    const mesh = await meshOf(t, control, 'orders')
    await control.close()
    const ev = events(mesh, { publishTimeout: 400 })
    t.add(() => ev.close())
    const err = await ev.publish({ type: 'x' }).catch((e: unknown) => e)
    expect(isMeshletError(err, 'MESHLET_ERR_BROKER_UNAVAILABLE')).toBe(true)
    expect((err as Error).message).toContain(`Broker "default" is unavailable at ${url}/v1/ingress/shop/default (ECONNREFUSED)`)
    expect((err as Error).message).toMatch(/gave up after \d+ attempts/)
    expect((err as { details: { attempts: number } }).details.attempts).toBeGreaterThan(1)
  })

  it('a mesh without a control endpoint has no broker: MESHLET_ERR_CONFIG_INVALID', async () => {
    const mesh = await createMesh({ service: 'orders', shutdownSignals: false })
    t.add(() => mesh.close())
    const ev = events(mesh)
    t.add(() => ev.close())
    const err = await ev.publish({ type: 'x' }).catch((e: unknown) => e)
    expect(isMeshletError(err, 'MESHLET_ERR_CONFIG_INVALID')).toBe(true)
    expect((err as Error).message).toMatch(/no control endpoint/)
  })
})
