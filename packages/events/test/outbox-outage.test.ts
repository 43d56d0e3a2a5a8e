/**
 * The publisher outbox against a real control endpoint that goes away: while it is down, publish
 * spools (and resolves); once it is back on the same port and data directory, the background
 * sender forwards everything, in order, and nothing is lost. Also: the spool's bound, its depth in
 * inspect(), and a spool left by an earlier events() resumed by the next.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { isMeshletError } from '@meshlet/core'
import { events } from '../src/index.js'
import { OutboxSpool } from '../src/client/outbox-spool.js'
import { Inbox, meshOf, serveReceivers, startTestControl, tempDir, Teardown, triggerReady } from './client-harness.js'

const N = 300

describe('outbox', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it(`the broker down while ${N} events are published: all ${N} arrive once it is back, none lost, in order`, { timeout: 60_000 }, async () => {
    const dataDir = await tempDir(t)
    let control = await startTestControl(t, { dataDir, broker: { maxInFlight: 1 } })
    const port = control.port
    const inbox = new Inbox()
    await serveReceivers(t, 'node:http', await meshOf(t, control, 'audit'), (ev) => ev.trigger('audit', { delivery: { retry: 50, backoffDelay: 'PT0.05S' } }, (e) => inbox.add(e)))
    await triggerReady(control, 'audit')
    const publisher = events(await meshOf(t, control, 'orders'), { outbox: await tempDir(t, 'meshlet-outbox-') })
    t.add(() => publisher.close())
    await publisher.publish({ type: 'probe' })
    await inbox.count(1)

    await control.close()
    // Publishing load: 30 publishers at once, each publishing its events one after another.
    const per = N / 30
    await Promise.all(Array.from({ length: 30 }, async (_, p) => {
      for (let i = 0; i < per; i++) await publisher.publish({ type: 'order.created', subject: `p${p}`, data: { p, i } })
    }))
    const spooled = publisher.inspect().outbox!
    expect(spooled.depth).toBe(N)
    expect(spooled.bytes).toBeGreaterThan(0)

    control = await startTestControl(t, { dataDir, port, broker: { maxInFlight: 1 } })
    await publisher.flush()
    expect(publisher.inspect().outbox).toMatchObject({ depth: 0, bytes: 0, rejected: 0 })
    expect(publisher.inspect().outbox!.forwarded).toBe(N)
    // At-least-once: an event may come twice (the probe, acked just before the outage), never not at all.
    await inbox.until(() => inbox.distinct('order.created').length === N)
    const orders = inbox.distinct('order.created')
    // Each publisher's events arrive in the order it published them.
    for (let p = 0; p < 30; p++) expect(orders.filter((e) => e.subject === `p${p}`).map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: per }, (_, i) => i))

    // Empty again: the next publish goes straight to the broker.
    await publisher.publish({ type: 'after' })
    expect(publisher.inspect().outbox!.depth).toBe(0)
    await inbox.until(() => inbox.distinct('after').length === 1)
  })

  it('a full outbox refuses the publish with MESHLET_ERR_BROKER_UNAVAILABLE saying so; what was spooled stays', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const mesh = await meshOf(t, control, 'orders')
    await control.close()
    const publisher = events(mesh, { outbox: await tempDir(t, 'meshlet-outbox-'), outboxMaxBytes: 4096 })
    t.add(() => publisher.close())
    let accepted = 0
    let refusal: unknown
    for (let i = 0; i < 100 && refusal === undefined; i++) {
      try {
        await publisher.publish({ type: 'order.created', data: 'x'.repeat(200) })
        accepted++
      } catch (err) {
        refusal = err
      }
    }
    expect(accepted).toBeGreaterThan(5)
    expect(isMeshletError(refusal, 'MESHLET_ERR_BROKER_UNAVAILABLE')).toBe(true)
    expect((refusal as Error).message).toMatch(/outbox at .* is full \(\d+ of 4096 bytes spooled, \d+ events\)/)
    expect(publisher.inspect().outbox!.depth).toBe(accepted)
  })

  it('a second events() on the same outbox directory in one process is refused; after close, the next one resumes the spool', async () => {
    const control = await startTestControl(t, { dataDir: await tempDir(t) })
    const mesh = await meshOf(t, control, 'orders')
    const port = control.port
    const dataDir = await tempDir(t)
    await control.close()
    const dir = await tempDir(t, 'meshlet-outbox-')
    const first = events(mesh, { outbox: dir })
    for (let i = 0; i < 5; i++) await first.publish({ type: 'order.created', data: { i } })
    const second = events(mesh, { outbox: dir })
    const refused = await second.publish({ type: 'x' }).catch((e: unknown) => e)
    expect(isMeshletError(refused, 'MESHLET_ERR_CONFIG_INVALID')).toBe(true)
    expect((refused as Error).message).toMatch(/in use by another events\(\) of this process/)
    await second.close()
    await first.close()

    const spool = await OutboxSpool.open(dir, { maxBytes: 1 << 20 })
    expect(spool.depth).toBe(5)
    await spool.close()
    await startTestControl(t, { dataDir, port })
    const third = events(mesh, { outbox: dir })
    t.add(() => third.close())
    await third.flush()
    expect(third.inspect().outbox).toMatchObject({ depth: 0, forwarded: 5 })
  })
})
