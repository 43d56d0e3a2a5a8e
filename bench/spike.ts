/**
 * Spike shielding (issue 4): two instances of one service, each its own process
 * (bench/dist/spike-server.js): A with capacity C (C slots of WORK_MS async work, FIFO wait for a
 * slot), B with room (10×C slots, admission off). This process sends bursts of 10×C concurrent
 * POSTs through `meshAgent` (default policy: retries, budget, breaker, outlier) to the service
 * with both endpoints, and compares A with admission on (`concurrency: { limit: C, queue: C,
 * queueTimeout: 50ms }`: excess refused with 503 + meshlet-rejected, retried on B) against A
 * with admission off (excess waits in A's handler). Fresh server processes for every run; the
 * variants alternate (on off, off on, ...). Reports requests failed as the clients see them
 * (target: 0 with admission on), p50/p99 of the successful ones, and what A served and refused.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { meshAgent } from '@meshlet/http'
import { closedLoop, Histogram, type LoadResult, type Send } from './load.js'
import { launch, nextMessage, stop } from './procs.js'
import { check, envNumber, interleave, local, newMesh, printTable, round1, round3 } from './report.js'

const C = 8
const WORK_MS = envNumber('BENCH_SPIKE_WORK_MS', 20)
const BURST = Math.round(envNumber('BENCH_SPIKE_BURST', 10 * C))
const BURSTS = Math.round(envNumber('BENCH_SPIKE_BURSTS', 20))
const GAP_MS = envNumber('BENCH_SPIKE_GAP_MS', 300)
const ROUNDS = Math.round(envNumber('BENCH_SPIKE_ROUNDS', 2))
const ADMISSION = { concurrency: { limit: C, queue: C, queueTimeout: '50ms' } }
const BODY = Buffer.alloc(256, 'p')

interface Stats {
  served: number
  peakInflight: number
  refused: number
  rejected: Record<string, number>
}

async function startInstance(capacity: number, admission: object | undefined): Promise<{ child: ChildProcess; port: number }> {
  const child = launch(process.execPath, [join(import.meta.dirname, 'spike-server.js'), String(capacity), String(WORK_MS), admission ? JSON.stringify(admission) : 'off'], { ipc: true })
  const { port } = await nextMessage(child, 'spike server ready', (m): m is { port: number } => typeof (m as { port?: unknown }).port === 'number', 10_000)
  return { child, port }
}

async function statsOf(child: ChildProcess): Promise<Stats> {
  const reply = nextMessage(child, 'spike server stats', (m): m is { stats: Stats } => typeof (m as { stats?: unknown }).stats === 'object')
  child.send({ stats: true })
  return (await reply).stats
}

/** Sums burst results into one. */
function merge(into: LoadResult, r: LoadResult): void {
  into.requests += r.requests
  into.errors += r.errors
  into.seconds += r.seconds
  into.cpuMs += r.cpuMs
  into.hist.merge(r.hist)
  for (const [k, n] of Object.entries(r.errorKinds)) into.errorKinds[k] = (into.errorKinds[k] ?? 0) + n
}

/** Per variant: what A and B served and refused, summed over runs. */
type Served = { aServed: number; aRefused: number; aRejected: Record<string, number>; aPeak: number; bServed: number }

/** One run: fresh A and B, a client mesh over both, BURSTS bursts of BURST concurrent POSTs. */
async function run(admissionOn: boolean, served: Served): Promise<LoadResult> {
  const [a, b] = await Promise.all([startInstance(C, admissionOn ? ADMISSION : undefined), startInstance(10 * C, undefined)])
  const mesh = await newMesh({ spike: { endpoints: [local(a.port), local(b.port)] } })
  const agent = meshAgent(mesh)
  const send: Send = async () => {
    const { statusCode, body } = await agent.request({ origin: 'http://spike', path: '/work', method: 'POST', body: BODY, headers: { 'content-type': 'application/octet-stream' } })
    await body.dump()
    return statusCode
  }
  try {
    // Warm-up under capacity: connections to both, and the balancer's first latencies.
    await closedLoop(send, { concurrency: 2, requests: 4 * C })
    const [a0, b0] = await Promise.all([statsOf(a.child), statsOf(b.child)])
    const total: LoadResult = { requests: 0, errors: 0, seconds: 0, cpuMs: 0, hist: new Histogram(), errorKinds: {} }
    for (let i = 0; i < BURSTS; i++) {
      merge(total, await closedLoop(send, { concurrency: BURST, requests: BURST }))
      await new Promise((resolve) => setTimeout(resolve, GAP_MS))
    }
    const [a1, b1] = await Promise.all([statsOf(a.child), statsOf(b.child)])
    served.aServed += a1.served - a0.served
    served.aRefused += a1.refused - a0.refused
    for (const [k, n] of Object.entries(a1.rejected)) served.aRejected[k] = (served.aRejected[k] ?? 0) + n - (a0.rejected[k] ?? 0)
    served.aPeak = Math.max(served.aPeak, a1.peakInflight)
    served.bServed += b1.served - b0.served
    return total
  } finally {
    await agent.close()
    await mesh.close()
    await Promise.all([stop(a.child), stop(b.child)])
  }
}

export async function spike(): Promise<Record<string, unknown>> {
  const names = { on: 'admission on', off: 'admission off' } as const
  const served: Record<string, Served> = Object.fromEntries(Object.values(names).map((n) => [n, { aServed: 0, aRefused: 0, aRejected: {}, aPeak: 0, bServed: 0 }]))
  console.log(
    `spike: A capacity ${C} (${WORK_MS} ms of async work each), B capacity ${10 * C}; ${BURSTS} bursts of ${BURST} concurrent POSTs ${GAP_MS} ms apart per run; ` +
      `admission on = ${JSON.stringify(ADMISSION)}; fresh servers per run, ${ROUNDS} interleaved rounds`,
  )
  // The Send of interleave is unused: each run builds its own servers and client.
  const unused: Send = () => Promise.reject(new Error('unused'))
  const totals = await interleave({ [names.on]: unused, [names.off]: unused }, ROUNDS, (name) => run(name === names.on, served[name]!))

  const rows = [...totals].map(([k, t]) => {
    const s = served[k]!
    return {
      variant: k,
      requests: t.requests,
      'failed (client)': t.errors,
      'p50 ms': round3(t.hist.percentile(50)),
      'p99 ms': round3(t.hist.percentile(99)),
      'max ms': round3(t.hist.percentile(100)),
      'A served': s.aServed,
      'A refused': s.aRefused,
      'A peak running': s.aPeak,
      'B served': s.bServed,
      ...(t.errors > 0 ? { 'error kinds': t.errorKinds } : {}),
    }
  })
  printTable(`spike, ${BURSTS} bursts of ${BURST} (10×C, C=${C}) per run, ${ROUNDS} rounds`, rows)
  const on = totals.get(names.on)!
  const off = totals.get(names.off)!
  const p99Ratio = round3(on.hist.percentile(99) / off.hist.percentile(99))
  printTable('spike targets', [
    { metric: 'failed requests, admission on (B has room)', value: on.errors, target: '0', result: check(on.errors === 0) },
    { metric: 'failed requests, admission off', value: off.errors, target: '', result: '' },
    { metric: 'p99 on / off (successful requests)', value: p99Ratio, target: '', result: '' },
    { metric: 'A refused per burst, admission on', value: round1(served[names.on]!.aRefused / (BURSTS * ROUNDS)), target: '', result: '' },
  ])
  return {
    capacity: C,
    workMs: WORK_MS,
    burst: BURST,
    bursts: BURSTS,
    gapMs: GAP_MS,
    rounds: ROUNDS,
    admission: ADMISSION,
    results: Object.fromEntries([...totals].map(([k, t]) => [k, { ...t.summary(), ...served[k]! }])),
    p99OnOverOff: p99Ratio,
  }
}
