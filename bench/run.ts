/**
 * meshlet benches, side by side in one process so a noisy machine hits every variant alike:
 *   overhead  raw undici Pool vs meshAgent (default policy, and policies off) vs one and two haproxy hops
 *             (c=64 throughput, c=1 latency)
 *   balance   p99 with one endpoint of ten 10× slower: default balancer vs all healthy vs round-robin
 *   failover  an open loop at 1,000 req/s while one of three endpoints is SIGKILLed
 *   stack     the core client stack alone (no network): ns per call with each policy on
 *   routing   a 10-rule route table vs no routes through the agent (throughput ratio)
 *   propagation  a ServicePolicy put on the control endpoint (its own process, the `meshlet control`
 *             CLI) until applied in N meshes (N = 100, 1,000) that follow it from a few processes
 *   registry  10,000 instances on the endpoint: its RSS, list latency, heartbeat load at their TTL
 *   grpc      plain grpc-js vs grpc-js through meshlet (client and server), unary c=64 and server streaming (bench/grpc.ts)
 *   spike     bursts of 10×C POSTs at two instances, one of capacity C: admission on vs off (bench/spike.ts)
 *   events    publish → trigger handler with durability on, embedded broker vs NATS JetStream (bench/events.ts)
 * Usage: node bench/dist/run.js [overhead] [balance] [failover] [stack] [routing] [propagation] [registry] [grpc] [spike] [events]   (all by default)
 * Env: BENCH_SECONDS (5) BENCH_WARMUP (1) BENCH_ROUNDS (2) BENCH_LATENCY_REQUESTS (3000)
 *      BENCH_REQUESTS (20000) BENCH_BALANCE_DELAY_MS (10; the slow endpoint takes 10×)
 *      BENCH_FAILOVER_SECONDS (6) BENCH_FAILOVER_RATE (1000)
 *      BENCH_PROPAGATION_N (100,1000) BENCH_PROPAGATION_PROCS (4) BENCH_PROPAGATION_CHANGES (10, after 2 warm-up changes)
 *      BENCH_GRPC_ROUNDS (8) BENCH_GRPC_SECONDS (1.5) BENCH_GRPC_WARMUP (0.3)
 *      BENCH_EVENTS_RATE (5000) BENCH_EVENTS_BACKLOG (200000)
 *      BENCH_REGISTRY_INSTANCES (10000) BENCH_REGISTRY_TTL_MS (15000) BENCH_HEARTBEAT_SECONDS (10)
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { join } from 'node:path'
import { metrics } from '@opentelemetry/api'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { Pool, type Dispatcher } from 'undici'
import { API_VERSION, Classification, ControlClient, MeshMetrics, DEFAULT_INSTANCE_TTL, type BalancerType, type ClientProtocol, type InstanceRegistration, type Mesh, type RegisterResponse, type Resource } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { closedLoop, Histogram, openLoop, type Send } from './load.js'
import { grpc } from './grpc.js'
import { check, envNumber, interleave, local, newMesh, printTable, round1, round3 } from './report.js'
import { spike } from './spike.js'
import { eventsBench } from './events.js'
import { cpuMsOf, launch, machineCpuMs, nextMessage, rssKiBOf, startControlProcess, startHaproxy, startUpstream, stop, type ControlProcess } from './procs.js'

const SECONDS = envNumber('BENCH_SECONDS', 5)
const WARMUP = envNumber('BENCH_WARMUP', 1)
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 2))
const LATENCY_REQUESTS = Math.round(envNumber('BENCH_LATENCY_REQUESTS', 3000))
const BALANCE_REQUESTS = Math.round(envNumber('BENCH_REQUESTS', 20_000))
const FAILOVER_SECONDS = envNumber('BENCH_FAILOVER_SECONDS', 6)
const FAILOVER_RATE = envNumber('BENCH_FAILOVER_RATE', 1000)
const BALANCE_DELAY_MS = envNumber('BENCH_BALANCE_DELAY_MS', 10)
const OVERHEAD_CONCURRENCY = 64
const BALANCE_CONCURRENCY = 32
const PATH = '/x'
const PROPAGATION_SIZES = (process.env.BENCH_PROPAGATION_N ?? '100,1000').split(',').map((x) => Math.round(Number(x)))
const PROPAGATION_PROCS = Math.round(envNumber('BENCH_PROPAGATION_PROCS', 4))
const PROPAGATION_CHANGES = Math.round(envNumber('BENCH_PROPAGATION_CHANGES', 10))
const PROPAGATION_WARMUP_CHANGES = 2
const REGISTRY_INSTANCES = Math.round(envNumber('BENCH_REGISTRY_INSTANCES', 10_000))
const REGISTRY_TTL_MS = envNumber('BENCH_REGISTRY_TTL_MS', DEFAULT_INSTANCE_TTL)
const REGISTRY_HEARTBEAT_SECONDS = envNumber('BENCH_HEARTBEAT_SECONDS', 10)
const REGISTRY_CONCURRENCY = 64
const REGISTRY_LISTS = 20

// A real SDK meter provider, so the mesh records its metrics for real (exported once a minute).
const meterProvider = new MeterProvider({
  readers: [new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 60_000 })],
})
metrics.setGlobalMeterProvider(meterProvider)

/** One request through `d`; `origin` names a mesh service, or is omitted for a Pool. */
function sender(d: Dispatcher, origin?: string): Send {
  return async () => {
    const { statusCode, body } = await d.request(origin === undefined ? { path: PATH, method: 'GET' } : { origin, path: PATH, method: 'GET' })
    await body.dump()
    return statusCode
  }
}


async function overhead(): Promise<Record<string, unknown>> {
  const upstream = await startUpstream(['0'])
  const port = upstream.ports[0]!
  const serverSidecar = await startHaproxy(port)
  const clientSidecar = await startHaproxy(serverSidecar.port)
  // "payments" has the default policy; "bare" turns retries, breaker, outlier and timeout off, to
  // tell the cost of the resilience filters from that of the agent, balancer and metrics.
  const mesh = await newMesh({
    payments: { endpoints: [local(port)] },
    bare: { endpoints: [local(port)], retries: false, breaker: false, outlier: false, timeout: false },
  })
  const agent = meshAgent(mesh)
  const pools = [new Pool(local(port)), new Pool(local(serverSidecar.port)), new Pool(local(clientSidecar.port))] as const
  // undici's own do-nothing interceptor: the floor for any v2-handler layer over undici 7, whose
  // request API and Pool speak the older handler interface (each side converts headers).
  const noopInterceptorPool = new Pool(local(port))
  const noopInterceptor = noopInterceptorPool.compose((dispatch) => (opts, handler) => dispatch(opts, handler))
  try {
    const variants: Record<string, Send> = {
      raw: sender(pools[0]),
      'undici no-op interceptor': sender(noopInterceptor),
      mesh: sender(agent, 'http://payments'),
      'mesh, policies off': sender(agent, 'http://bare'),
      'haproxy 1 hop': sender(pools[1]),
      'haproxy 2 hops': sender(pools[2]),
    }
    console.log(`overhead: c=${OVERHEAD_CONCURRENCY}, ${WARMUP} s warm-up + ${SECONDS} s per run, ${ROUNDS} interleaved rounds`)
    // CPU per request counts this process and the sidecars (the upstream's share is the same for all).
    const sidecarsCpuMs = (): number => cpuMsOf(serverSidecar.child) + cpuMsOf(clientSidecar.child)
    const tput = await interleave(variants, ROUNDS, async (_name, send) => {
      await closedLoop(send, { concurrency: OVERHEAD_CONCURRENCY, seconds: WARMUP })
      const sidecars0 = sidecarsCpuMs()
      const r = await closedLoop(send, { concurrency: OVERHEAD_CONCURRENCY, seconds: SECONDS })
      r.cpuMs += sidecarsCpuMs() - sidecars0
      return r
    })
    const latencyRounds = Math.max(ROUNDS, 3)
    console.log(`latency: c=1, ${LATENCY_REQUESTS} sequential requests per run, ${latencyRounds} interleaved rounds`)
    const { 'haproxy 2 hops': _twoHops, ...latencyVariants } = variants
    const lat = await interleave(latencyVariants, latencyRounds, async (_name, send) => {
      await closedLoop(send, { concurrency: 1, requests: Math.ceil(LATENCY_REQUESTS / 10) })
      return closedLoop(send, { concurrency: 1, requests: LATENCY_REQUESTS })
    })

    const rps = (k: string): number => tput.get(k)!.requests / tput.get(k)!.seconds
    const p50 = (k: string): number => lat.get(k)!.hist.percentile(50)
    const addedCpuUs = (k: string): number => round1(((tput.get(k)!.cpuMs / tput.get(k)!.requests) - tput.get('raw')!.cpuMs / tput.get('raw')!.requests) * 1000)
    const ratios = {
      meshOverRaw: round3(rps('mesh') / rps('raw')),
      noopInterceptorOverRaw: round3(rps('undici no-op interceptor') / rps('raw')),
      meshOverNoopInterceptor: round3(rps('mesh') / rps('undici no-op interceptor')),
      meshOverOneHop: round3(rps('mesh') / rps('haproxy 1 hop')),
      meshOverTwoHops: round3(rps('mesh') / rps('haproxy 2 hops')),
      addedP50UsC1: round1((p50('mesh') - p50('raw')) * 1000),
      meshAddedCpuUsPerRequest: addedCpuUs('mesh'),
      oneHopAddedCpuUsPerRequest: addedCpuUs('haproxy 1 hop'),
    }
    const throughput = Object.fromEntries([...tput].map(([k, t]) => [k, t.summary()]))
    const latency = Object.fromEntries([...lat].map(([k, t]) => [k, { ...t.summary(), meanMs: round3(t.hist.mean()) }]))
    printTable(
      `overhead, c=${OVERHEAD_CONCURRENCY}, 1 KiB responses`,
      [...tput].map(([k, t]) => {
        const s = t.summary()
        return {
          variant: k,
          'req/s': s.reqPerSec,
          'vs raw': round3(rps(k) / rps('raw')),
          'p50 ms': s.p50Ms,
          'p99 ms': s.p99Ms,
          'CPU µs/req (client+sidecars)': s.cpuUsPerRequest,
          'req/s per round': (s.perRound as number[]).join(' '),
          errors: s.errors,
        }
      }),
    )
    printTable(
      'latency, c=1',
      [...lat].map(([k, t]) => ({
        variant: k,
        'p50 µs': round1(t.hist.percentile(50) * 1000),
        'p99 µs': round1(t.hist.percentile(99) * 1000),
        'mean µs': round1(t.hist.mean() * 1000),
        'p50 - raw p50 µs': round1((p50(k) - p50('raw')) * 1000),
        'client CPU µs/req': round1((t.cpuMs * 1000) / t.requests),
        errors: t.errors,
      })),
    )
    printTable('overhead targets', [
      { metric: 'mesh / raw req/s', value: ratios.meshOverRaw, target: '>= 0.90', result: check(ratios.meshOverRaw >= 0.9) },
      { metric: 'undici no-op interceptor / raw req/s', value: ratios.noopInterceptorOverRaw, target: '', result: '' },
      { metric: 'mesh / undici no-op interceptor req/s', value: ratios.meshOverNoopInterceptor, target: '', result: '' },
      { metric: 'mesh / haproxy 1 hop req/s', value: ratios.meshOverOneHop, target: '>= 1.5', result: check(ratios.meshOverOneHop >= 1.5) },
      { metric: 'mesh / haproxy 2 hops req/s', value: ratios.meshOverTwoHops, target: '', result: '' },
      { metric: 'c=1 added p50 (µs)', value: ratios.addedP50UsC1, target: '<= 25', result: check(ratios.addedP50UsC1 <= 25) },
      { metric: 'added CPU µs/req, mesh', value: ratios.meshAddedCpuUsPerRequest, target: '', result: '' },
      { metric: 'added CPU µs/req, haproxy 1 hop', value: ratios.oneHopAddedCpuUsPerRequest, target: '', result: '' },
    ])
    return { concurrency: OVERHEAD_CONCURRENCY, seconds: SECONDS, warmupSeconds: WARMUP, rounds: ROUNDS, throughput, latency, ratios }
  } finally {
    await agent.close()
    await mesh.close()
    await Promise.all([...pools, noopInterceptorPool].map((p) => p.close()))
    await Promise.all([stop(clientSidecar.child), stop(serverSidecar.child), stop(upstream.child)])
  }
}

/** Requests each endpoint of `service` has received so far, by URL. */
function requestsByUrl(mesh: Mesh, service: string): Map<string, number> {
  return new Map(mesh.inspect().destinations[service]!.endpoints.map((e) => [e.url, e.requests]))
}

async function balance(): Promise<Record<string, unknown>> {
  // Ten endpoints at BALANCE_DELAY_MS plus one 10× slower; "healthy" uses the first ten, "slow" swaps the last for the slow one.
  // The delay must dwarf the CPU time per request, or queueing on 2 cores hides the slow endpoint.
  const upstream = await startUpstream([...Array.from({ length: 10 }, () => `0:${BALANCE_DELAY_MS}`), `0:${BALANCE_DELAY_MS * 10}`])
  const urls = upstream.ports.map(local)
  const slowUrl = urls[10]!
  const healthy = urls.slice(0, 10)
  const slow = [...urls.slice(0, 9), slowUrl]
  const mesh = await newMesh({
    healthy: { endpoints: healthy },
    slow: { endpoints: slow },
    'slow-rr': { endpoints: slow, balancer: 'round-robin' },
  })
  const agent = meshAgent(mesh)
  const labels: Record<string, string> = { healthy: 'default, all healthy', slow: 'default, one slow', 'slow-rr': 'round-robin, one slow' }
  try {
    const variants = Object.fromEntries(Object.keys(labels).map((s) => [s, sender(agent, `http://${s}`)]))
    const perRound = Math.ceil(BALANCE_REQUESTS / ROUNDS)
    console.log(`balance: 10 endpoints (${BALANCE_DELAY_MS} ms; the slow one ${BALANCE_DELAY_MS * 10} ms), c=${BALANCE_CONCURRENCY}, ${Math.ceil(BALANCE_REQUESTS / 10)} warm-up + ${perRound} requests per run, ${ROUNDS} interleaved rounds`)
    for (const send of Object.values(variants)) await closedLoop(send, { concurrency: BALANCE_CONCURRENCY, requests: Math.ceil(BALANCE_REQUESTS / 10) })
    const before = new Map(Object.keys(labels).map((s) => [s, requestsByUrl(mesh, s)]))
    const totals = await interleave(variants, ROUNDS, (_name, send) => closedLoop(send, { concurrency: BALANCE_CONCURRENCY, requests: perRound }))
    const slowShare = (s: string): number | undefined => {
      if (s === 'healthy') return undefined
      const after = requestsByUrl(mesh, s)
      let all = 0
      for (const [url, n] of after) all += n - (before.get(s)!.get(url) ?? 0)
      return round3((after.get(slowUrl)! - before.get(s)!.get(slowUrl)!) / all)
    }
    const p99 = (s: string): number => totals.get(s)!.hist.percentile(99)
    const ratios = { defaultOverHealthy: round3(p99('slow') / p99('healthy')), defaultOverRoundRobin: round3(p99('slow') / p99('slow-rr')) }
    const results = Object.fromEntries([...totals].map(([k, t]) => [k, { ...t.summary(), slowEndpointShare: slowShare(k) }]))
    printTable(
      `balance, c=${BALANCE_CONCURRENCY}, ${BALANCE_REQUESTS} requests each`,
      [...totals].map(([k, t]) => {
        const s = t.summary()
        return { variant: labels[k], 'p50 ms': s.p50Ms, 'p99 ms': s.p99Ms, 'req/s': s.reqPerSec, 'share to slow endpoint': slowShare(k) ?? '-', errors: s.errors }
      }),
    )
    printTable('balance targets', [
      { metric: 'p99 default (one slow) / all healthy', value: ratios.defaultOverHealthy, target: '<= 1.5', result: check(ratios.defaultOverHealthy <= 1.5) },
      { metric: 'p99 default / round-robin (one slow)', value: ratios.defaultOverRoundRobin, target: '<= 0.25', result: check(ratios.defaultOverRoundRobin <= 0.25) },
    ])
    return { concurrency: BALANCE_CONCURRENCY, requests: BALANCE_REQUESTS, rounds: ROUNDS, results, ratios }
  } finally {
    await agent.close()
    await mesh.close()
    await stop(upstream.child)
  }
}

/** One failover run: 3 endpoints, one SIGKILLed a third of the way into an open loop. */
async function failoverRun(balancer: BalancerType): Promise<Record<string, unknown>> {
  const upstreams = await Promise.all([0, 1, 2].map(() => startUpstream(['0'])))
  const urls = upstreams.map((u) => local(u.ports[0]!))
  const victim = upstreams[1]!
  const victimUrl = urls[1]!
  const mesh = await newMesh({ payments: { endpoints: urls, balancer } })
  const agent = meshAgent(mesh)
  const killAtMs = (FAILOVER_SECONDS * 1000) / 3
  let killedAt: number | undefined
  let ejectedEventAt: number | undefined
  let ejectedSeenAt: number | undefined
  let retries = 0
  const onEjected = (m: unknown): void => {
    if ((m as { endpoint?: string }).endpoint === victimUrl) ejectedEventAt ??= performance.now()
  }
  const onRetry = (): void => void retries++
  subscribe('meshlet:endpoint:ejected', onEjected)
  subscribe('meshlet:retry', onRetry)
  const poll = setInterval(() => {
    if (killedAt === undefined || ejectedSeenAt !== undefined) return
    if (mesh.inspect().destinations.payments!.endpoints.find((e) => e.url === victimUrl)?.ejected) ejectedSeenAt = performance.now()
  }, 10)
  try {
    console.log(`  ${balancer}: SIGKILL of ${victimUrl} at ${(killAtMs / 1000).toFixed(1)} s`)
    const r = await openLoop(sender(agent, 'http://payments'), {
      rate: FAILOVER_RATE,
      seconds: FAILOVER_SECONDS,
      maxInflight: FAILOVER_RATE * 5,
      onTick: (elapsed) => {
        if (killedAt === undefined && elapsed >= killAtMs) {
          victim.child.kill('SIGKILL')
          killedAt = performance.now()
        }
      },
    })
    const since = (t: number | undefined): number | null => (t === undefined || killedAt === undefined ? null : round1(t - killedAt))
    return {
      balancer,
      requests: r.requests,
      failed: r.errors,
      errorKinds: r.errorKinds,
      retries,
      p50Ms: round3(r.hist.percentile(50)),
      p99Ms: round3(r.hist.percentile(99)),
      maxMs: round3(r.hist.percentile(100)),
      killToEjectedEventMs: since(ejectedEventAt),
      killToInspectEjectedMs: since(ejectedSeenAt),
      victim: mesh.inspect().destinations.payments!.endpoints.find((e) => e.url === victimUrl),
    }
  } finally {
    clearInterval(poll)
    unsubscribe('meshlet:endpoint:ejected', onEjected)
    unsubscribe('meshlet:retry', onRetry)
    await agent.close()
    await mesh.close()
    await Promise.all(upstreams.map((u) => stop(u.child)))
  }
}

/** Failover with the default balancer (the target) and with round-robin (which keeps sending to the dead endpoint, so ejection shows). */
async function failover(): Promise<Record<string, unknown>> {
  console.log(`failover: 3 endpoints, open loop ${FAILOVER_RATE} req/s for ${FAILOVER_SECONDS} s, outlier defaults`)
  const runs = [await failoverRun('p2c-peak-ewma'), await failoverRun('round-robin')]
  printTable(
    `failover, ${FAILOVER_RATE} req/s open loop, 1 of 3 endpoints SIGKILLed`,
    runs.map((r) => {
      const v = r.victim as { consecutiveFailures: number; latencyMs: number } | undefined
      return {
        balancer: r.balancer,
        requests: r.requests,
        failed: r.failed,
        retries: r.retries,
        'p99 ms': r.p99Ms,
        'max ms': r.maxMs,
        'kill → ejected event ms': r.killToEjectedEventMs ?? 'never',
        'kill → inspect ejected ms': r.killToInspectEjectedMs ?? 'never',
        'victim consecutive failures / ewma ms at end': `${v?.consecutiveFailures} / ${v?.latencyMs}`,
      }
    }),
  )
  for (const r of runs) if ((r.failed as number) > 0) console.log(`  ${r.balancer} failures by kind:`, JSON.stringify(r.errorKinds))
  printTable(
    'failover targets',
    runs.map((r) => ({ metric: `failed requests (${r.balancer})`, value: r.failed, target: '0', result: check(r.failed === 0) })),
  )
  return { rate: FAILOVER_RATE, seconds: FAILOVER_SECONDS, runs }
}

/**
 * The core client stack with a terminal that answers at once: what the roles (metrics, deadline,
 * retry, breaker, pick, per-try timeout) cost per call, free of sockets and the machine's network
 * noise.
 */
async function stack(): Promise<Record<string, unknown>> {
  const ok = { status: 200 }
  const protocol: ClientProtocol<object, { status: number }> = {
    name: 'bench',
    classifier: { response: () => Classification.Success, error: () => Classification.Failure },
    endpoint: () => Promise.resolve(ok),
    canResend: () => true,
    discard: () => {},
    retryAfter: () => undefined,
    reportedLoad: () => undefined,
    setHeader: () => {},
    // As the HTTP protocol records it: a cached attribute set into the SDK's histogram.
    recordDuration: (_req, ctx, res, _err, seconds) =>
      stackMetrics.clientDuration.record(seconds, stackMetrics.attributes(`c:${ctx.service}:GET:${res?.status ?? 0}:`, () => ({ 'http.request.method': 'GET', 'server.address': ctx.service, 'http.response.status_code': res?.status ?? 0 }))),
  }
  const stackMetrics = new MeshMetrics()
  const off = { retries: false, breaker: false, outlier: false, timeout: false } as const
  const variants: Record<string, Record<string, unknown>> = {
    'policies off': off,
    'timeout only': { ...off, timeout: 15_000 },
    'retries only': { ...off, retries: {} },
    'breaker only': { ...off, breaker: {} },
    'outlier only': { ...off, outlier: {} },
    'all (defaults)': {},
  }
  const calls = Math.round(envNumber('BENCH_STACK_CALLS', 200_000))
  const nsPerCall: Record<string, number[]> = {}
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const [name, policy] of Object.entries(variants)) {
      const mesh = await newMesh({ p: { endpoints: [local(1)], ...policy } as never })
      const d = mesh.destination('p')!
      const s = d.stack(protocol)
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < calls; i += OVERHEAD_CONCURRENCY) {
        const batch: Promise<unknown>[] = []
        for (let j = 0; j < OVERHEAD_CONCURRENCY; j++) batch.push(s({}, d.newContext(true)))
        await Promise.all(batch)
      }
      const ns = Number(process.hrtime.bigint() - t0) / calls
      if (round > 0) (nsPerCall[name] ??= []).push(Math.round(ns)) // round 0 warms up
      await mesh.close()
    }
  }
  const rows = Object.entries(nsPerCall).map(([variant, runs]) => ({ variant, 'ns/call (min of rounds)': Math.min(...runs), 'per round': runs.join(' ') }))
  printTable(`core client stack alone, ${calls} calls per run, ${OVERHEAD_CONCURRENCY} in flight`, rows)
  return Object.fromEntries(rows.map((r) => [r.variant, r['ns/call (min of rounds)']]))
}

// The control endpoint in its own process, and the meshes that follow it.
const TOKENS = { admin: 'bench-admin-token', join: 'bench-join-token' }
const wallNow = (): number => performance.timeOrigin + performance.now()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const kib = (n: number): string => (n >= 10_240 ? `${round1(n / 1024)} MiB` : `${n} KiB`)

/** Endpoint CPU over a span, % of one core, from /proc. */
function cpuMeter(child: ChildProcess): () => number {
  const cpu0 = cpuMsOf(child)
  const t0 = performance.now()
  return () => round1(((cpuMsOf(child) - cpu0) / (performance.now() - t0)) * 100)
}

/**
 * CPU the rest of the machine used over a span (% of one core): every process but the bench's own
 * and `ours`. Other work on a 2-core machine moves propagation times a lot; this says how much there was.
 */
function othersMeter(ours: ChildProcess[]): () => number {
  const mine = (): number => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1000 + ours.reduce((a, c) => a + cpuMsOf(c), 0)
  }
  const machine0 = machineCpuMs()
  const mine0 = mine()
  const t0 = performance.now()
  return () => round1(((machineCpuMs() - machine0 - (mine() - mine0)) / (performance.now() - t0)) * 100)
}

function servicePolicy(timeout: string): Resource {
  return { apiVersion: API_VERSION, kind: 'ServicePolicy', metadata: { name: 'payments', namespace: 'default' }, spec: { service: 'payments', timeout } }
}

let changes = 0

/** One propagation run: N meshes in PROPAGATION_PROCS processes follow the endpoint; each put is timed to its application in every mesh. */
async function propagationRun(control: ControlProcess, client: ControlClient, n: number, run: number): Promise<Record<string, unknown>> {
  const procs = Math.min(PROPAGATION_PROCS, n)
  /** resourceVersion → times each mesh applied it, as processes report them (possibly before the put's answer). */
  const reports = new Map<number, number[][]>()
  let onReport = (): void => {}
  const children = Array.from({ length: procs }, (_, k) => {
    const child = launch(process.execPath, [join(import.meta.dirname, 'watchers.js')], { ipc: true })
    child.on('message', (m: { rv?: number; appliedAt?: number[] }) => {
      if (m.rv === undefined || m.appliedAt === undefined) return
      let list = reports.get(m.rv)
      if (list === undefined) reports.set(m.rv, (list = []))
      list.push(m.appliedAt)
      onReport()
    })
    const count = Math.floor(n / procs) + (k < n % procs ? 1 : 0)
    child.send({ control: control.url, token: TOKENS.join, prefix: `w${run}x${k}`, count })
    return child
  })
  try {
    const t0 = performance.now()
    const ready = await Promise.all(children.map((c) => nextMessage(c, 'watchers ready', (m): m is { ready: number; rss: number } => typeof (m as { ready?: unknown }).ready === 'number', 120_000)))
    const startSeconds = round1((performance.now() - t0) / 1000)
    const watcherRss = Math.round(ready.reduce((a, r) => a + r.rss, 0) / 1024)
    console.log(`  N=${n}: ${procs} processes, ${n} meshes following the endpoint after ${startSeconds} s (watcher processes' RSS ${kib(watcherRss)})`)
    // Watcher CPU while idle (the meshes' timers, bookmarks), after start-up settles, to tell it from the cost of a change.
    const watchersCpuMs = (): number => children.reduce((a, c) => a + cpuMsOf(c), 0)
    await sleep(500)
    const idle0 = { cpu: watchersCpuMs(), t: performance.now() }
    await sleep(1500)
    const idlePerMs = (watchersCpuMs() - idle0.cpu) / (performance.now() - idle0.t)
    let busy0 = { cpu: 0, t: 0 }
    const loadavg = round1(os.loadavg()[0]!)
    const hist = new Histogram()
    const putHist = new Histogram()
    const perChange: number[] = []
    const warmup: number[] = []
    let cpu = cpuMeter(control.child)
    let others = othersMeter([control.child, ...children])
    let last = 0
    // The first changes after 1,000 meshes start run cold (JIT, start-up garbage): shown, not counted.
    for (let c = -PROPAGATION_WARMUP_CHANGES; c < PROPAGATION_CHANGES; c++) {
      if (c === 0) {
        cpu = cpuMeter(control.child)
        busy0 = { cpu: watchersCpuMs(), t: performance.now() }
        others = othersMeter([control.child, ...children])
      }
      // Alternates over the whole scenario, so every put is a change (an unchanged put is no event).
      last = changes++ % 2 === 0 ? 3000 : 2000
      const putAt = wallNow()
      const { object, result } = await client.put(servicePolicy(`${last}ms`))
      putHist.record(wallNow() - putAt)
      if (result !== 'configured') throw new Error(`the put of timeout ${last} ms was "${result}", not a change`)
      const rv = object.metadata.resourceVersion!
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`N=${n}: after 30 s, every mesh had applied resourceVersion ${rv} in only ${reports.get(rv)?.length ?? 0} of ${procs} watcher processes`)), 30_000)
        onReport = () => {
          if ((reports.get(rv)?.length ?? 0) < procs) return
          clearTimeout(timer)
          resolve()
        }
        onReport()
      })
      const times = reports.get(rv)!.flat()
      let max = 0
      for (const t of times) {
        if (c >= 0) hist.record(t - putAt)
        max = Math.max(max, t - putAt)
      }
      ;(c >= 0 ? perChange : warmup).push(round1(max))
      console.log(`  N=${n} ${c >= 0 ? `change ${c + 1}/${PROPAGATION_CHANGES}` : 'warm-up change'} (timeout ${last} ms, resourceVersion ${rv}): all ${times.length} meshes applied it within ${max.toFixed(1)} ms of the put`)
      await sleep(300)
    }
    const endpointCpu = cpu()
    const othersCpu = others()
    const changeCpuMs = watchersCpuMs() - busy0.cpu - idlePerMs * (performance.now() - busy0.t)
    const mismatched = (await Promise.all(children.map((c) => (c.send({ check: last }), nextMessage(c, 'watchers check', (m): m is { mismatched: number } => typeof (m as { mismatched?: unknown }).mismatched === 'number'))))).reduce((a, m) => a + m.mismatched, 0)
    if (mismatched > 0) throw new Error(`N=${n}: ${mismatched} meshes do not have the last policy (timeout ${last} ms)`)
    return {
      meshes: n,
      processes: procs,
      changes: PROPAGATION_CHANGES,
      samples: hist.count,
      p50Ms: round1(hist.percentile(50)),
      p99Ms: round1(hist.percentile(99)),
      maxMs: round1(hist.percentile(100)),
      minMs: round1(hist.percentile(0)),
      maxPerChangeMs: perChange,
      warmupMaxPerChangeMs: warmup,
      putAckP50Ms: round1(putHist.percentile(50)),
      startSeconds,
      watcherRssMiB: round1(watcherRss / 1024),
      endpointCpuPercent: endpointCpu,
      watcherCpuUsPerMeshChange: Math.round((changeCpuMs * 1000) / (n * PROPAGATION_CHANGES)),
      watchersIdleCpuPercent: round1(idlePerMs * 100),
      loadavg1mAtStart: loadavg,
      otherProcessesCpuPercent: othersCpu,
      endpointRssMiB: round1(rssKiBOf(control.child).rss / 1024),
    }
  } finally {
    await Promise.all(children.map((c) => stop(c)))
  }
}

async function propagation(): Promise<Record<string, unknown>> {
  const control = await startControlProcess(TOKENS)
  const client = new ControlClient({ url: control.url, token: TOKENS.admin })
  // One payments instance, so every mesh's registry knows the service; kept alive for the run.
  const { id, ttl } = await client.register({ service: 'payments', port: 9, address: '127.0.0.1' })
  const beat = setInterval(() => void client.heartbeat(id).catch(() => {}), ttl / 3)
  try {
    await client.put(servicePolicy('1s'))
    console.log(`propagation: endpoint ${control.url} (pid ${control.child.pid}); N = ${PROPAGATION_SIZES.join(', ')} meshes in up to ${PROPAGATION_PROCS} processes, ${PROPAGATION_WARMUP_CHANGES} warm-up + ${PROPAGATION_CHANGES} ServicePolicy changes each`)
    const runs: Record<string, unknown>[] = []
    for (const [i, n] of PROPAGATION_SIZES.entries()) runs.push(await propagationRun(control, client, n, i))
    const at1000 = runs.find((r) => r.meshes === 1000)
    printTable(
      'propagation: put of a ServicePolicy change → applied in every watching mesh (wall clock, all mesh × change samples)',
      runs.map((r) => ({
        meshes: r.meshes,
        processes: r.processes,
        samples: r.samples,
        'p50 ms': r.p50Ms,
        'p99 ms': r.p99Ms,
        'max ms': r.maxMs,
        'slowest mesh per change ms': (r.maxPerChangeMs as number[]).join(' '),
        'warm-up changes ms (not counted)': (r.warmupMaxPerChangeMs as number[]).join(' '),
        'put ack p50 ms': r.putAckP50Ms,
        'endpoint CPU %': r.endpointCpuPercent,
        'watcher CPU µs per mesh per change': r.watcherCpuUsPerMeshChange,
        'watchers idle CPU %': r.watchersIdleCpuPercent,
        'load avg 1 min': r.loadavg1mAtStart,
        'CPU % of other processes': r.otherProcessesCpuPercent,
        'endpoint RSS MiB': r.endpointRssMiB,
        'watchers RSS MiB': r.watcherRssMiB,
      })),
    )
    if (at1000 !== undefined) printTable('propagation target', [{ metric: 'p99 at N = 1,000 (ms)', value: at1000.p99Ms, target: '<= 250', result: check((at1000.p99Ms as number) <= 250) }])
    return { runs }
  } finally {
    clearInterval(beat)
    await stop(control.child)
  }
}

async function registry(): Promise<Record<string, unknown>> {
  const control = await startControlProcess(TOKENS)
  const client = new ControlClient({ url: control.url, token: TOKENS.join })
  // The load itself goes through an undici Pool: global fetch costs the bench process enough CPU
  // at 2,000 req/s on 2 cores to measure the generator instead of the endpoint.
  const pool = new Pool(control.url, { connections: 64 })
  const headers = { authorization: `Bearer ${TOKENS.join}`, 'content-type': 'application/json' }
  const n = REGISTRY_INSTANCES
  try {
    const rssEmpty = rssKiBOf(control.child).rss
    // 100 services of n/100 instances, as meshes register them (mesh.register: lease TTL, http).
    const ids: string[] = []
    let next = 0
    const registration = (i: number): InstanceRegistration => ({
      service: `svc-${i % 100}`,
      namespace: 'default',
      revision: i % 10 === 0 ? 'v2' : 'v1',
      zone: `zone-${i % 3}`,
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      protocols: ['http'],
      ttl: REGISTRY_TTL_MS,
    })
    console.log(`registry: endpoint ${control.url} (pid ${control.child.pid}); registering ${n} instances (TTL ${REGISTRY_TTL_MS} ms), ${REGISTRY_CONCURRENCY} at a time`)
    const cpuReg = cpuMeter(control.child)
    const othersReg = othersMeter([control.child])
    const reg = await closedLoop(
      async () => {
        const { statusCode, body } = await pool.request({ path: '/v1/instances', method: 'POST', headers, body: JSON.stringify(registration(next++)) })
        const r = (await body.json()) as RegisterResponse
        if (statusCode === 201) ids.push(r.id)
        return statusCode
      },
      { concurrency: REGISTRY_CONCURRENCY, requests: n },
    )
    const regCpu = cpuReg()
    const regOthers = othersReg()
    if (reg.errors > 0) throw new Error(`registering: ${reg.errors} of ${n} failed: ${JSON.stringify(reg.errorKinds)}`)
    const rssRegistered = rssKiBOf(control.child).rss
    console.log(`  registered ${ids.length} in ${reg.seconds.toFixed(1)} s (${Math.round(ids.length / reg.seconds)}/s, p99 ${reg.hist.percentile(99).toFixed(1)} ms); endpoint RSS ${kib(rssEmpty)} empty → ${kib(rssRegistered)}`)

    // Lists: the raw HTTP exchange, as a CLI or dashboard sees it (no JSON parse on our side).
    let bytes = 0
    let listed = 0
    const list = async (): Promise<number> => {
      const res = await fetch(`${control.url}/v1/instances`, { headers: { authorization: `Bearer ${TOKENS.join}` } })
      const body = await res.text()
      bytes = Buffer.byteLength(body)
      listed = (body.match(/"kind":"Instance"/g) ?? []).length
      return res.status
    }
    await closedLoop(list, { concurrency: 1, requests: 2 })
    const othersList = othersMeter([control.child])
    const lists = await closedLoop(list, { concurrency: 1, requests: REGISTRY_LISTS })
    const listOthers = othersList()
    console.log(`  GET /v1/instances ×${REGISTRY_LISTS}: p50 ${lists.hist.percentile(50).toFixed(1)} ms, p99 ${lists.hist.percentile(99).toFixed(1)} ms, ${listed} instances, ${kib(Math.round(bytes / 1024))}`)

    // Heartbeats at the cadence of a mesh (a third of the TTL), round robin over every lease, with
    // a report of the shape a mesh sends (its state and one destination's endpoints).
    const rate = Math.round(n / (REGISTRY_TTL_MS / 3 / 1000))
    const report = {
      state: 'serving',
      inflight: 2,
      utilization: 0.02,
      configVersion: 3,
      destinations: { payments: { breaker: 'closed', endpoints: [1, 2, 3].map((k) => ({ url: `http://10.0.0.${k}:8080`, latencyMs: 1.2, inflight: 0, requests: 1000 * k, failures: 0, ejected: false })) } },
    }
    const reportBody = JSON.stringify({ report })
    let beat = 0
    console.log(`  heartbeats: ${rate}/s (${n} leases of ${REGISTRY_TTL_MS} ms, each renewed every ${REGISTRY_TTL_MS / 3} ms) for ${REGISTRY_HEARTBEAT_SECONDS} s`)
    const cpuBeat = cpuMeter(control.child)
    const othersBeat = othersMeter([control.child])
    const beats = await openLoop(
      async () => {
        const { statusCode, body } = await pool.request({ path: `/v1/instances/${ids[beat++ % ids.length]}/heartbeat`, method: 'POST', headers, body: reportBody })
        await body.dump()
        return statusCode
      },
      { rate, seconds: REGISTRY_HEARTBEAT_SECONDS, maxInflight: rate },
    )
    const beatCpu = cpuBeat()
    const beatOthers = othersBeat()
    const rssAfter = rssKiBOf(control.child)
    const alive = (await client.instances()).items.length
    const heartbeats = {
      targetPerSecond: rate,
      achievedPerSecond: Math.round((beats.requests - beats.errors) / beats.seconds),
      p50Ms: round3(beats.hist.percentile(50)),
      p99Ms: round3(beats.hist.percentile(99)),
      maxMs: round3(beats.hist.percentile(100)),
      errors: beats.errors,
      ...(beats.errors > 0 ? { errorKinds: beats.errorKinds } : {}),
      endpointCpuPercent: beatCpu,
      benchCpuPercent: round1((beats.cpuMs / (beats.seconds * 1000)) * 100),
      otherProcessesCpuPercent: beatOthers,
      instancesAfter: alive,
    }
    const out = {
      instances: n,
      register: { perSecond: Math.round(n / reg.seconds), p50Ms: round3(reg.hist.percentile(50)), p99Ms: round3(reg.hist.percentile(99)), concurrency: REGISTRY_CONCURRENCY, endpointCpuPercent: regCpu, benchCpuPercent: round1((reg.cpuMs / (reg.seconds * 1000)) * 100), otherProcessesCpuPercent: regOthers },
      endpointRssMiB: { empty: round1(rssEmpty / 1024), registered: round1(rssRegistered / 1024), afterHeartbeats: round1(rssAfter.rss / 1024), peak: round1(rssAfter.peak / 1024) },
      list: { requests: REGISTRY_LISTS, p50Ms: round1(lists.hist.percentile(50)), p99Ms: round1(lists.hist.percentile(99)), instances: listed, bytes, otherProcessesCpuPercent: listOthers },
      heartbeats,
    }
    printTable(`registry: ${n} instances on one endpoint (its own process)`, [
      { metric: `register (c=${REGISTRY_CONCURRENCY})`, value: `${out.register.perSecond}/s, p50 ${out.register.p50Ms} ms, p99 ${out.register.p99Ms} ms`, 'endpoint CPU %': regCpu, 'bench CPU %': out.register.benchCpuPercent, 'CPU % of other processes': regOthers },
      { metric: 'endpoint RSS', value: `${out.endpointRssMiB.empty} MiB empty, ${out.endpointRssMiB.registered} MiB registered, ${out.endpointRssMiB.afterHeartbeats} MiB after heartbeats (peak ${out.endpointRssMiB.peak} MiB)`, 'endpoint CPU %': '' },
      { metric: `GET /v1/instances ×${REGISTRY_LISTS}`, value: `p50 ${out.list.p50Ms} ms, p99 ${out.list.p99Ms} ms, ${listed} instances, ${round1(bytes / 2 ** 20)} MiB`, 'endpoint CPU %': '', 'bench CPU %': '', 'CPU % of other processes': listOthers },
      {
        metric: `heartbeats for ${REGISTRY_HEARTBEAT_SECONDS} s`,
        value: `${heartbeats.achievedPerSecond}/s of ${rate}/s, p50 ${heartbeats.p50Ms} ms, p99 ${heartbeats.p99Ms} ms, max ${heartbeats.maxMs} ms, ${heartbeats.errors} errors${beats.errors > 0 ? ` ${JSON.stringify(beats.errorKinds)}` : ''}, ${alive} instances after`,
        'endpoint CPU %': beatCpu,
        'bench CPU %': heartbeats.benchCpuPercent,
        'CPU % of other processes': beatOthers,
      },
    ])
    return out
  } finally {
    await pool.close()
    await stop(control.child)
  }
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus()
  const version = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]!.trim()
    } catch {
      return 'unknown'
    }
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    undici: (createRequire(import.meta.url)('undici/package.json') as { version: string }).version,
    haproxy: version('haproxy', ['-v']),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavgAtStart: os.loadavg().map(round1),
  }
}

/**
 * Routing overhead (issue 4): the same upstream through a destination with no routes and one with
 * a 10-rule table whose last rule matches (nine header + path matches fail first), interleaved.
 */
async function routing(): Promise<Record<string, unknown>> {
  const upstream = await startUpstream(['0'])
  const endpoints = [{ url: local(upstream.ports[0]!), revision: 'v1' }]
  const rules = [
    ...Array.from({ length: 9 }, (_, i) => ({ match: { headers: { 'x-tenant': `t${i}` }, path: { prefix: `/never-${i}/` } }, split: [{ revision: 'v1', weight: 100 }] })),
    { split: [{ revision: 'v1', weight: 100 }] },
  ]
  const mesh = await newMesh({ plain: { endpoints }, routed: { endpoints, routes: rules } })
  const agent = meshAgent(mesh)
  try {
    console.log(`routing: c=${OVERHEAD_CONCURRENCY}, ${WARMUP} s warm-up + ${SECONDS} s per run, ${ROUNDS} interleaved rounds`)
    const tput = await interleave({ 'no routes': sender(agent, 'http://plain'), '10-rule route table': sender(agent, 'http://routed') }, ROUNDS, async (_name, send) => {
      await closedLoop(send, { concurrency: OVERHEAD_CONCURRENCY, seconds: WARMUP })
      return closedLoop(send, { concurrency: OVERHEAD_CONCURRENCY, seconds: SECONDS })
    })
    const rps = (k: string): number => tput.get(k)!.requests / tput.get(k)!.seconds
    const ratio = round3(rps('10-rule route table') / rps('no routes'))
    printTable(
      `routing overhead, c=${OVERHEAD_CONCURRENCY}`,
      [...tput].map(([k, t]) => ({ variant: k, ...t.summary() })),
    )
    printTable('routing targets', [{ metric: '10-rule table / no routes req/s', value: ratio, target: '>= 0.97', result: check(ratio >= 0.97) }])
    return { rounds: ROUNDS, results: Object.fromEntries([...tput].map(([k, t]) => [k, t.summary()])), ratio }
  } finally {
    await agent.close()
    await mesh.close()
    await stop(upstream.child)
  }
}

const scenarios: Record<string, () => Promise<Record<string, unknown>>> = { overhead, balance, failover, stack, routing, propagation, registry, grpc, spike, events: eventsBench }
const selected = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(scenarios)
for (const s of selected) if (!(s in scenarios)) throw new Error(`unknown scenario "${s}"; choose from: ${Object.keys(scenarios).join(', ')}`)

const results: Record<string, unknown> = { machine: machine() }
for (const s of selected) {
  console.log(`\n== ${s}`)
  results[s] = await scenarios[s]!()
}
;(results.machine as Record<string, unknown>).loadavgAtEnd = os.loadavg().map(round1)
await meterProvider.shutdown()
const file = join(import.meta.dirname, '..', 'results.json')
writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
console.log(`\nwrote ${file}`)
