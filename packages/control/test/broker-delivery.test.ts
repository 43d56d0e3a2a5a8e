/** The broker's dispatcher against real subscribers: delivery, filters, retries, dead letters, replies, TTL, back-pressure. */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ControlServer } from '../src/index.js'
import { removeTempDirs, startTestControl } from './control-harness.js'
import { admin, event, publish, registerSubscriber, TestSubscriber, trigger, triggerStatus, untilGone, untilStatus } from './broker-harness.js'

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).reverse().map((o) => o.close()))
})
afterAll(removeTempDirs)

async function control(options: Parameters<typeof startTestControl>[0] = {}): Promise<ControlServer> {
  const c = await startTestControl(options)
  open.push(c)
  return c
}

async function subscriber(c: ControlServer, service: string, triggers?: Record<string, unknown>[]): Promise<TestSubscriber> {
  const s = await TestSubscriber.start()
  open.unshift(s)
  await registerSubscriber(c.url, service, s, triggers ? { triggers } : {})
  return s
}

/** Applies a Trigger and waits until the broker runs it (its consumer is open from here on). */
async function applyTrigger(c: ControlServer, name: string, spec: Record<string, unknown>): Promise<void> {
  await admin(c.url).put(trigger(name, spec) as never)
  await untilStatus(c.url, name, (s) => s.ready === true)
}

describe('broker delivery', () => {
  it('delivers a published event to the subscriber in binary mode, without the broker TTL', async () => {
    const c = await control()
    const sub = await subscriber(c, 'notify')
    await applyTrigger(c, 'on-order', { subscriber: { ref: { kind: 'Service', name: 'notify' }, uri: '/events' } })
    const res = await publish(c.url, event('e1'), { body: '{"order":1}' })
    expect(res.status).toBe(202)
    expect(res.json).toEqual({ accepted: 1, dropped: 0 })
    await sub.until(() => sub.requests.length === 1)
    const [r] = sub.requests
    expect(r!.path).toBe('/events')
    expect(r!.headers).toMatchObject({ 'ce-id': 'e1', 'ce-source': '/tests', 'ce-type': 'com.example.order.created', 'ce-specversion': '1.0', 'content-type': 'application/json', prefer: 'reply' })
    expect(r!.headers['ce-knativebrokerttl']).toBeUndefined()
    expect(JSON.parse(r!.body)).toEqual({ order: 1 })
    const s = await untilStatus(c.url, 'on-order', (st) => st.counters.delivered === 1)
    expect(s).toMatchObject({ broker: 'default', source: 'resource', subscriber: 'http://notify/events', ready: true })
  })

  it('delivers only events that match the filter; the others are acked as filtered', async () => {
    const c = await control()
    const sub = await subscriber(c, 'notify')
    await applyTrigger(c, 'only-paid', { filter: { attributes: { type: 'com.example.order.paid' } }, subscriber: { ref: { kind: 'Service', name: 'notify' } } })
    for (const [id, type] of [['a', 'com.example.order.created'], ['b', 'com.example.order.paid'], ['c', 'com.example.order.shipped'], ['d', 'com.example.order.paid']] as const) {
      expect((await publish(c.url, event(id, type))).status).toBe(202)
    }
    const s = await untilStatus(c.url, 'only-paid', (st) => st.counters.delivered + st.counters.filtered === 4)
    expect(s.counters).toMatchObject({ delivered: 2, filtered: 2 })
    expect(sub.ids.sort()).toEqual(['b', 'd'])
    expect(s.lag).toBe(0)
  })

  it('retries a failing subscriber with the configured backoff, then dead-letters the event with knativeerrordest, knativeerrorcode and knativeerrordata', async () => {
    const c = await control()
    const sub = await subscriber(c, 'flaky')
    const dls = await subscriber(c, 'dead-letters')
    sub.answer = () => ({ status: 503, body: 'database is down' })
    await applyTrigger(c, 'to-flaky', {
      subscriber: { ref: { kind: 'Service', name: 'flaky' }, uri: '/in' },
      delivery: { retry: 3, backoffPolicy: 'linear', backoffDelay: 'PT0.05S', deadLetterSink: { ref: { kind: 'Service', name: 'dead-letters' } } },
    })
    await publish(c.url, event('doomed'))
    await dls.until(() => dls.requests.length === 1)
    expect(sub.requests).toHaveLength(4) // the first attempt and 3 retries
    expect(sub.requests.map((r) => r.headers['meshlet-delivery-count'])).toEqual(['1', '2', '3', '4'])
    const gaps = sub.requests.slice(1).map((r, i) => r.at - sub.requests[i]!.at)
    // Linear: 50, 100, 150 ms (lower bounds: a timer never fires early).
    gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(50 * (i + 1) - 2))
    const dead = dls.requests[0]!.headers
    expect(dead['ce-id']).toBe('doomed')
    expect(dead['ce-knativeerrordest']).toBe('http://flaky/in')
    expect(dead['ce-knativeerrorcode']).toBe('503')
    expect(Buffer.from(String(dead['ce-knativeerrordata']), 'base64').toString()).toBe('database is down')
    const s = await untilStatus(c.url, 'to-flaky', (st) => st.counters.deadLettered === 1)
    expect(s.counters).toMatchObject({ delivered: 0, retried: 3, deadLettered: 1, failed: 0 })
  })

  it('does not retry a 400, and with no dead-letter sink drops the event after logging it', async () => {
    const c = await control()
    const sub = await subscriber(c, 'strict')
    sub.answer = () => ({ status: 400, body: 'missing field' })
    await applyTrigger(c, 'to-strict', { subscriber: { ref: { kind: 'Service', name: 'strict' } }, delivery: { retry: 5, backoffDelay: 'PT0.01S' } })
    await publish(c.url, event('bad-for-them'))
    const s = await untilStatus(c.url, 'to-strict', (st) => st.counters.failed === 1)
    expect(sub.requests).toHaveLength(1)
    expect(s.counters).toMatchObject({ retried: 0, failed: 1 })
  })

  it('honours Retry-After on a 429 (and caps it at retryAfterMax)', async () => {
    const c = await control()
    const sub = await subscriber(c, 'busy')
    sub.answer = (_r, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '1' } } : i === 1 ? { status: 503, headers: { 'retry-after': '3600' } } : { status: 200 })
    await applyTrigger(c, 'to-busy', { subscriber: { ref: { kind: 'Service', name: 'busy' } }, delivery: { retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT0.01S', retryAfterMax: 'PT0.3S' } })
    await publish(c.url, event('later'))
    await untilStatus(c.url, 'to-busy', (st) => st.counters.delivered === 1)
    expect(sub.requests).toHaveLength(3)
    const [a, b, d] = sub.requests.map((r) => r.at) as [number, number, number]
    // Retry-After 1s is capped at retryAfterMax (0.3s) but still longer than the 10 ms backoff; an hour is capped the same.
    expect(b - a).toBeGreaterThanOrEqual(298)
    expect(d - b).toBeGreaterThanOrEqual(298)
  })

  it('re-enqueues a reply (a 200 carrying an event) into the broker, where another trigger gets it; a 202 is not a reply', async () => {
    const c = await control()
    const orders = await subscriber(c, 'orders')
    const mail = await subscriber(c, 'mail')
    orders.answer = (r) => (r.headers['ce-id'] === 'o1' ? { status: 200, headers: { 'ce-specversion': '1.0', 'ce-id': 'confirm-o1', 'ce-source': '/orders', 'ce-type': 'com.example.order.confirmed', 'content-type': 'text/plain' }, body: 'ok' } : { status: 202 })
    await applyTrigger(c, 'new-orders', { filter: { attributes: { type: 'com.example.order.created' } }, subscriber: { ref: { kind: 'Service', name: 'orders' } } })
    await applyTrigger(c, 'confirmations', { filter: { attributes: { type: 'com.example.order.confirmed' } }, subscriber: { ref: { kind: 'Service', name: 'mail' } } })
    await publish(c.url, event('o1'))
    await publish(c.url, event('o2'))
    await mail.until(() => mail.requests.length === 1)
    expect(mail.requests[0]!.headers).toMatchObject({ 'ce-id': 'confirm-o1', 'ce-source': '/orders', 'ce-type': 'com.example.order.confirmed' })
    expect(mail.requests[0]!.body).toBe('ok')
    const s = await untilStatus(c.url, 'new-orders', (st) => st.counters.delivered === 2)
    expect(s.counters.replies).toBe(1)
    await untilStatus(c.url, 'confirmations', (st) => st.counters.filtered === 2 && st.lag === 0)
    expect(mail.requests).toHaveLength(1)
  })

  it('stops a reply loop by TTL: each reply carries the TTL minus one, a spent one is dropped', async () => {
    const c = await control()
    const echo = await subscriber(c, 'echo')
    let n = 0
    echo.answer = () => ({ status: 200, headers: { 'ce-specversion': '1.0', 'ce-id': `echo-${++n}`, 'ce-source': '/echo', 'ce-type': 'com.example.ping' } })
    await applyTrigger(c, 'pings', { subscriber: { ref: { kind: 'Service', name: 'echo' } } })
    await publish(c.url, event('ping-0', 'com.example.ping', { knativebrokerttl: '3' }))
    const s = await untilStatus(c.url, 'pings', (st) => st.counters.dropped === 1)
    // ttl 3 → delivered, reply ttl 2 → delivered, reply ttl 1 → delivered, reply ttl 0 → dropped.
    expect(echo.ids).toEqual(['ping-0', 'echo-1', 'echo-2'])
    expect(s.counters).toMatchObject({ delivered: 3, replies: 2, dropped: 1 })
  })

  it('drops an event that arrives at the ingress with its TTL spent, and counts it', async () => {
    const c = await control()
    const sub = await subscriber(c, 'notify')
    await applyTrigger(c, 'all', { subscriber: { ref: { kind: 'Service', name: 'notify' } } })
    expect((await publish(c.url, event('spent', undefined, { knativebrokerttl: '0' }))).json).toEqual({ accepted: 0, dropped: 1 })
    await publish(c.url, event('fresh'))
    await sub.until(() => sub.requests.length === 1)
    expect(sub.ids).toEqual(['fresh'])
    const brokers = (await (await fetch(`${c.url}/v1/status/brokers/default`, { headers: { authorization: `Bearer ${c.joinToken}` } })).json()) as { items: { name: string; accepted: number; dropped: number }[] }
    expect(brokers.items.find((b) => b.name === 'default')).toMatchObject({ accepted: 1, dropped: 1 })
  })

  it('retries a handler that fails (connection reset mid-request) and keeps the control endpoint serving', async () => {
    const c = await control()
    const sub = await subscriber(c, 'crashy')
    sub.answer = (_r, i) => (i < 2 ? Promise.reject(new Error('handler threw')) : { status: 200 })
    await applyTrigger(c, 'to-crashy', { subscriber: { ref: { kind: 'Service', name: 'crashy' } }, delivery: { retry: 4, backoffDelay: 'PT0.01S' } })
    await publish(c.url, event('survive'))
    const s = await untilStatus(c.url, 'to-crashy', (st) => st.counters.delivered === 1)
    expect(sub.requests).toHaveLength(3)
    expect(s.counters.retried).toBe(2)
    expect((await fetch(`${c.url}/healthz`)).status).toBe(200)
  })

  it('holds at most maxInFlight deliveries for a slow subscriber; the rest wait in the broker', async () => {
    const c = await control({ broker: { maxInFlight: 4 } })
    const slow = await subscriber(c, 'slow')
    const held: (() => void)[] = []
    slow.answer = () => new Promise((resolve) => held.push(() => resolve({ status: 200 })))
    await applyTrigger(c, 'to-slow', { subscriber: { ref: { kind: 'Service', name: 'slow' } } })
    for (let i = 0; i < 40; i++) expect((await publish(c.url, event(`s${i}`))).status).toBe(202)
    await slow.until(() => slow.pending === 4)
    const s = await untilStatus(c.url, 'to-slow', (st) => st.lag === 40)
    expect(s.counters.inFlight).toBe(4)
    expect(slow.requests).toHaveLength(4)
    // Releasing them lets the rest through, never more than 4 at a time.
    slow.answer = () => ({ status: 200 })
    held.splice(0).forEach((release) => release())
    await untilStatus(c.url, 'to-slow', (st) => st.counters.delivered === 40 && st.lag === 0)
    expect(slow.maxPending).toBe(4)
    expect(new Set(slow.ids).size).toBe(40)
  })

  it('runs a trigger advertised by live instances, at their path, and stops it when they are gone', async () => {
    const c = await control()
    const sub = await subscriber(c, 'shipping', [{ name: 'ship-paid', broker: 'default', path: '/_meshlet/events/ship-paid', filters: [{ exact: { type: 'com.example.order.paid' } }] }])
    const st = await untilStatus(c.url, 'ship-paid', (s) => s.ready === true)
    expect(st).toMatchObject({ source: 'advertised', service: 'shipping', subscriber: 'http://shipping/_meshlet/events/ship-paid' })
    await publish(c.url, event('p1', 'com.example.order.paid'))
    await publish(c.url, event('c1', 'com.example.order.created'))
    await untilStatus(c.url, 'ship-paid', (s) => s.counters.delivered === 1 && s.counters.filtered === 1)
    expect(sub.requests.map((r) => [r.path, r.headers['ce-id']])).toEqual([['/_meshlet/events/ship-paid', 'p1']])
    const [inst] = (await admin(c.url).instances({ service: 'shipping' })).items
    await admin(c.url).deregister(inst!.metadata.name)
    await untilGone(c.url, 'ship-paid')
    // While no instance advertises it, its events wait in the broker; the next instance resumes there.
    await publish(c.url, event('p2', 'com.example.order.paid'))
    await registerSubscriber(c.url, 'shipping', sub, { triggers: [{ name: 'ship-paid', broker: 'default', path: '/_meshlet/events/ship-paid', filters: [{ exact: { type: 'com.example.order.paid' } }] }] })
    await sub.until(() => sub.requests.length === 2)
    expect(sub.ids).toEqual(['p1', 'p2'])
  })

  it('shows why a trigger is not ready: no instances, a broker that does not exist, a filter that does not compile', async () => {
    const c = await control()
    await admin(c.url).put(trigger('nobody', { subscriber: { ref: { kind: 'Service', name: 'ghost' } } }) as never)
    await admin(c.url).put(trigger('no-broker', { broker: 'missing', subscriber: { ref: { kind: 'Service', name: 'ghost' } } }) as never)
    const nobody = await untilStatus(c.url, 'nobody', (s) => s.reason !== undefined)
    expect(nobody).toMatchObject({ ready: false, reason: expect.stringContaining('no live instances of service ghost') })
    expect(await triggerStatus(c.url, 'no-broker')).toMatchObject({ ready: false, reason: expect.stringContaining('broker "missing" does not exist') })
  })
})
