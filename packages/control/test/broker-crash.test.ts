/** The broker in a real `meshlet control` process, SIGKILLed while events stream in and out, then restarted. */
import type { ChildProcess } from 'node:child_process'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { kill9, removeTempDirs, spawnControl, tempDir } from './control-harness.js'
import { admin, event, publish, registerSubscriber, TestSubscriber, trigger, untilStatus } from './broker-harness.js'

const children: ChildProcess[] = []
const subscribers: TestSubscriber[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map(kill9))
  await Promise.all(subscribers.splice(0).map((s) => s.close()))
})
afterAll(removeTempDirs)

describe('broker crash safety', () => {
  it('loses no acknowledged event when the control endpoint is SIGKILLed mid-stream; duplicates are identifiable by (source, id)', { timeout: 90_000 }, async () => {
    const dir = await tempDir()
    const first = await spawnControl(dir)
    children.push(first.child)
    const sink = await TestSubscriber.start()
    subscribers.push(sink)
    // Every other delivery is held unanswered: at the crash, some events are delivered and acked,
    // some delivered and not yet acked (in flight), and some only in the log.
    const held: (() => void)[] = []
    sink.answer = (_r, i) => (i % 2 === 0 ? { status: 200 } : new Promise((resolve) => held.push(() => resolve({ status: 200 }))))
    await registerSubscriber(first.url, 'sink', sink)
    await admin(first.url).put(trigger('everything', { subscriber: { ref: { kind: 'Service', name: 'sink' } } }) as never)
    await untilStatus(first.url, 'everything', (s) => s.ready === true)

    const acked = new Set<string>()
    let stop = false
    // 4 publishers, each sending its own events one after another until the endpoint dies.
    const publishers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const id = `w${w}-${i}`
        try {
          const res = await publish(first.url, event(id), { body: JSON.stringify({ w, i }) })
          if (res.status === 202) acked.add(id)
          sink.check()
        } catch {
          return // the endpoint is gone: this event was never acknowledged
        }
      }
    })
    // Mid-stream: events acknowledged to publishers, some delivered, some still in the log.
    await sink.until(() => sink.pending >= 64 && acked.size >= 300)
    stop = true
    await kill9(first.child)
    await Promise.all(publishers)
    const beforeCrash = new Set(sink.requests.map((r) => `${String(r.headers['ce-source'])} ${String(r.headers['ce-id'])}`))
    const heldAtCrash = held.length
    sink.answer = () => ({ status: 200 })
    held.splice(0).forEach((release) => release())

    const second = await spawnControl(dir)
    children.push(second.child)
    const received = (): Set<string> => new Set(sink.requests.map((r) => `${String(r.headers['ce-source'])} ${String(r.headers['ce-id'])}`))
    await sink.until(() => [...acked].every((id) => received().has(`/tests ${id}`)))

    // Every event acked by the trigger, the redeliveries of the held ones included, before counting.
    const s = await untilStatus(second.url, 'everything', (st) => st.lag === 0 && st.counters.inFlight === 0)
    expect(s.ready).toBe(true)
    const keys = sink.requests.map((r) => `${String(r.headers['ce-source'])} ${String(r.headers['ce-id'])}`)
    const duplicates = keys.length - new Set(keys).size
    expect([...acked].filter((id) => !received().has(`/tests ${id}`))).toEqual([])
    // The held deliveries were never acked: they come again, and (source, id) tells them apart.
    expect(duplicates).toBeGreaterThanOrEqual(heldAtCrash)
    const seen = new Set<string>()
    for (const k of keys) {
      if (seen.has(k)) expect(beforeCrash.has(k)).toBe(true)
      seen.add(k)
    }
    console.warn(`broker crash: ${acked.size} acknowledged, ${beforeCrash.size} delivered before SIGKILL (${heldAtCrash} unanswered), ${keys.length} deliveries in all, ${duplicates} duplicate(s), 0 lost`)
  })
})
