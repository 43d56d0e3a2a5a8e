/**
 * Events, end to end with durability on: `events(mesh).publish` → the control endpoint's ingress
 * (its own process, the `meshlet control` CLI) → the broker's log (fsync before every ack, or
 * JetStream) → the dispatcher → the subscriber's trigger handler through the mesh. The embedded
 * broker and NATS JetStream run side by side in one run, each in the same shape:
 *   throughput  closed loop of publishers (single events at c=256, and batches of 32 at c=16):
 *               events handled per second
 *   latency     an open loop at BENCH_EVENTS_RATE (5,000/s): publish → handler p50/p99
 *   backlog     the subscriber away while BENCH_EVENTS_BACKLOG events (200,000) are published; the
 *               control process's RSS while they pile up and while they drain
 * Publisher and subscriber run in this process; latency is measured on one clock.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createMesh, type Mesh } from '@meshlet/core'
import { createMeshServer } from '@meshlet/http'
import { events, type MeshEvents } from '@meshlet/events'
import { Histogram } from './load.js'
import { check, envNumber, printTable, round1 } from './report.js'
import { rssKiBOf, startControlProcess, startNatsServer, stop, type ControlProcess } from './procs.js'

const SECONDS = envNumber('BENCH_SECONDS', 5)
const RATE = envNumber('BENCH_EVENTS_RATE', 5000)
const BACKLOG = Math.round(envNumber('BENCH_EVENTS_BACKLOG', 200_000))
const TOKENS = { admin: 'bench-admin-token', join: 'bench-join-token' }
const NAMESPACE = 'bench'

interface Rig {
  control: ControlProcess
  publisher: Mesh
  pub: MeshEvents
  /** Starts the subscriber (mesh, trigger, server) and resolves once deliveries reach it. */
  startSink(): Promise<void>
  stopSink(): Promise<void>
  /** Handled events and their publish → handler latencies (ms). */
  handled: { count: number; hist: Histogram }
  close(): Promise<void>
}

async function rig(brokerArg: string): Promise<Rig> {
  const control = await startControlProcess(TOKENS, ['--broker', brokerArg])
  const meshOptions = { namespace: NAMESPACE, control: control.url, token: TOKENS.join, shutdownSignals: false, drain: { delay: 0, timeout: 1000 } } as const
  const publisher = await createMesh({ service: 'publisher', ...meshOptions })
  const pub = events(publisher)
  const handled = { count: 0, hist: new Histogram() }
  let sink: { mesh: Mesh; ev: MeshEvents } | undefined
  const startSink = async (): Promise<void> => {
    const mesh = await createMesh({ service: 'sink', ...meshOptions })
    const ev = events(mesh)
    let arrived!: () => void
    const first = new Promise<void>((resolve) => (arrived = resolve))
    ev.trigger('bench', { filters: [{ exact: { type: 'bench.event' } }] }, (event) => {
      const data = (typeof event.data === 'string' ? JSON.parse(event.data) : event.data) as { t?: number; warmup?: boolean }
      if (data.warmup === true) return arrived()
      handled.count++
      if (typeof data.t === 'number') handled.hist.record(performance.now() - data.t)
    })
    const server = createMeshServer(mesh, ev.handler())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    await mesh.register({ port: (server.address() as AddressInfo).port })
    sink = { mesh, ev }
    // The trigger's consumer starts at the broker's end once the dispatcher sees the trigger: warm-up events until one arrives.
    let done = false
    void first.then(() => (done = true))
    const deadline = performance.now() + 30_000
    while (!done) {
      if (performance.now() > deadline) throw new Error('the subscriber received no warm-up event within 30 s')
      await pub.publish({ type: 'bench.event', data: { warmup: true } })
      await Promise.race([first, new Promise((r) => setTimeout(r, 100))])
    }
  }
  const stopSink = async (): Promise<void> => {
    await sink?.ev.close()
    await sink?.mesh.close()
    sink = undefined
  }
  const close = async (): Promise<void> => {
    await stopSink()
    await pub.close()
    await publisher.close()
    await stop(control.child)
  }
  return { control, publisher, pub, startSink, stopSink, handled, close }
}

/** Waits until `count` events were handled (or 60 s passed); resolves with the seconds it took. */
async function handledAll(r: Rig, count: number, t0: number): Promise<number> {
  const deadline = performance.now() + 60_000
  while (r.handled.count < count && performance.now() < deadline) await new Promise((res) => setTimeout(res, 5))
  return (performance.now() - t0) / 1000
}

async function throughput(r: Rig, concurrency: number, batch: number): Promise<{ eventsPerSecond: number; publishErrors: number }> {
  const start = r.handled.count
  let published = 0
  let errors = 0
  const t0 = performance.now()
  const end = t0 + SECONDS * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const items = Array.from({ length: batch }, () => ({ type: 'bench.event', data: { t: performance.now(), pad: 'x'.repeat(200) } }))
        try {
          await r.pub.publish(batch === 1 ? items[0]! : items)
          published += batch
        } catch {
          errors += batch
        }
      }
    }),
  )
  const seconds = await handledAll(r, start + published, t0)
  return { eventsPerSecond: Math.round((r.handled.count - start) / seconds), publishErrors: errors }
}

async function latency(r: Rig): Promise<{ p50: number; p99: number; max: number; lost: number }> {
  r.handled.hist = new Histogram()
  const start = r.handled.count
  const total = Math.round(RATE * SECONDS)
  let sent = 0
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE))
      while (sent < due) {
        sent++
        void r.pub.publish({ type: 'bench.event', data: { t: performance.now(), pad: 'x'.repeat(200) } }).catch(() => {})
      }
      if (sent === total) {
        clearInterval(timer)
        resolve()
      }
    }, 2)
  })
  await handledAll(r, start + total, t0)
  const h = r.handled.hist
  return { p50: round1(h.percentile(50)), p99: round1(h.percentile(99)), max: round1(h.percentile(100)), lost: total - (r.handled.count - start) }
}

async function backlog(r: Rig): Promise<{ events: number; rssBeforeMiB: number; rssFullMiB: number; rssDrainedMiB: number; peakDuringDrainMiB: number; drainSeconds: number }> {
  await r.stopSink()
  const mib = (): number => Math.round(rssKiBOf(r.control.child).rss / 1024)
  const rssBefore = mib()
  let published = 0
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (published < BACKLOG) {
        const n = Math.min(64, BACKLOG - published)
        published += n
        await r.pub.publish(Array.from({ length: n }, () => ({ type: 'bench.event', data: { pad: 'x'.repeat(200) } })))
      }
    }),
  )
  const rssFull = mib()
  const start = r.handled.count
  const t0 = performance.now()
  let peak = rssFull
  const sampler = setInterval(() => (peak = Math.max(peak, mib())), 100)
  await r.startSink()
  const drainSeconds = await handledAll(r, start + BACKLOG, t0)
  clearInterval(sampler)
  return { events: r.handled.count - start, rssBeforeMiB: rssBefore, rssFullMiB: rssFull, rssDrainedMiB: mib(), peakDuringDrainMiB: peak, drainSeconds: round1(drainSeconds) }
}

export async function eventsBench(): Promise<Record<string, unknown>> {
  const nats = await startNatsServer()
  const results: Record<string, Record<string, unknown>> = {}
  try {
    for (const [name, arg] of [
      ['embedded', 'embedded'],
      ['jetstream', nats.url],
    ] as const) {
      const r = await rig(arg)
      try {
        await r.startSink()
        const single = await throughput(r, 256, 1)
        const batched = await throughput(r, 16, 32)
        const lat = await latency(r)
        const back = await backlog(r)
        results[name] = { single, batched, latency: lat, backlog: back }
      } finally {
        await r.close()
      }
    }
  } finally {
    await stop(nats.child)
  }
  const e = results.embedded as { single: { eventsPerSecond: number }; batched: { eventsPerSecond: number }; latency: { p99: number }; backlog: { rssFullMiB: number; peakDuringDrainMiB: number; rssBeforeMiB: number } }
  const j = results.jetstream as typeof e
  printTable(`events publish → handler, durability on (${SECONDS} s per run)`, [
    { metric: 'single events/s (c=256)', embedded: e.single.eventsPerSecond, jetstream: j.single.eventsPerSecond, 'embedded/jetstream': round1(e.single.eventsPerSecond / j.single.eventsPerSecond) },
    { metric: 'batched events/s (32 × c=16)', embedded: e.batched.eventsPerSecond, jetstream: j.batched.eventsPerSecond, 'embedded/jetstream': round1(e.batched.eventsPerSecond / j.batched.eventsPerSecond) },
    { metric: `p99 ms at ${RATE}/s`, embedded: e.latency.p99, jetstream: j.latency.p99, 'embedded/jetstream': round1(e.latency.p99 / j.latency.p99) },
    { metric: `control RSS MiB, ${BACKLOG} backlog (before / full / drain peak)`, embedded: `${e.backlog.rssBeforeMiB} / ${e.backlog.rssFullMiB} / ${e.backlog.peakDuringDrainMiB}`, jetstream: `${j.backlog.rssBeforeMiB} / ${j.backlog.rssFullMiB} / ${j.backlog.peakDuringDrainMiB}`, 'embedded/jetstream': '' },
  ])
  const best = Math.max(e.single.eventsPerSecond, e.batched.eventsPerSecond)
  printTable('events targets (embedded broker)', [
    { metric: 'publish → handler events/s', value: best, target: '>= 10000', result: check(best >= 10_000) },
    { metric: `p99 ms at ${RATE}/s offered`, value: e.latency.p99, target: '<= 25', result: check(e.latency.p99 <= 25) },
    { metric: 'control RSS growth while draining the backlog, MiB', value: e.backlog.peakDuringDrainMiB - e.backlog.rssBeforeMiB, target: '< 128 (flat)', result: check(e.backlog.peakDuringDrainMiB - e.backlog.rssBeforeMiB < 128) },
  ])
  return results
}
