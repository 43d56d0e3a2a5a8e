/**
 * The meshlet demo: `pnpm demo`.
 *
 *   client ──► web (Fastify) ──► orders (Express) ──► payments-a (node:http)
 *                                                 └─► payments-b (node:http, +40 ms, 20% 503s/resets)
 *
 * Each service runs in its own process with its own mesh (static config, ports chosen at runtime).
 * The driver sends checkouts to web for a few seconds at a bounded rate, asks every service for its
 * numbers (its own timings, OpenTelemetry metrics, diagnostics-channel events, mesh.inspect()),
 * prints a report, and closes everything through mesh.close(). It exits non-zero when the client
 * saw failures above 1%, a service crashed or did not exit after closing, or it ran past 15 s.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import type { EndpointSnapshot, ServicePolicy } from '@meshlet/core'
import { EdgeRecorder, type CloseReport, type EdgeStats, type FromChild, type ServiceConfig, type ServiceReport, type ToChild } from './demo-shared.js'

const RUN_MS = 4000
const RATE = 250 // requests per second, at most
const CONCURRENCY = 16
const MAX_CLIENT_FAILURE_RATE = 0.01
const HARD_TIMEOUT_MS = 15_000
const SLOW_MS = 40
const FAIL_RATE = 0.2

const t0 = performance.now()
const children = new Set<ChildProcess>()
const closing = new Set<ChildProcess>()

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

function fatal(message: string, code = 1): never {
  console.error(`\ndemo FAILED: ${message}`)
  killAll()
  process.exit(code)
}

const hardTimeout = setTimeout(() => fatal(`still running after ${HARD_TIMEOUT_MS / 1000} s; killed every service.`, 2), HARD_TIMEOUT_MS)
process.once('SIGINT', () => fatal('interrupted.', 130))

// --- services --------------------------------------------------------------------------------

interface Launched {
  instance: string
  child: ChildProcess
  /** Resolves when the child imported its modules and waits for `start`. */
  loaded: Promise<void>
}

interface Running extends Launched {
  port: number
  url: string
}

/** Forks one compiled service module; it loads, then waits for `start`. */
function launch(module: string, instance: string): Launched {
  const child = fork(fileURLToPath(new URL(module, import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Structured clone, so mesh.inspect() keeps its Infinity values on the way.
    serialization: 'advanced',
  })
  children.add(child)
  child.on('message', (msg: FromChild) => {
    if (msg.type === 'failed') fatal(`${instance} failed:\n${msg.error}`)
  })
  child.once('exit', (code, signal) => {
    if (!closing.has(child)) fatal(`${instance} exited unexpectedly (${signal ?? `code ${code}`}).`)
  })
  const loaded = new Promise<void>((resolve) => {
    const onMessage = (msg: FromChild) => {
      if (msg.type !== 'loaded') return
      child.off('message', onMessage)
      resolve()
    }
    child.on('message', onMessage)
  })
  return { instance, child, loaded }
}

/** Starts a launched service once it has loaded, and waits until it listens. */
async function start(svc: Launched, config: Omit<ServiceConfig, 'instance'> = {}): Promise<Running> {
  await svc.loaded
  const { port } = await ask(svc, { type: 'start', config: { instance: svc.instance, ...config } }, 'listening', 5000)
  return { ...svc, port, url: `http://127.0.0.1:${port}` }
}

/** Sends `msg` and waits for the child's answer of type `type`. */
function ask<T extends FromChild['type']>(svc: Launched, msg: ToChild, type: T, timeoutMs = 3000): Promise<Extract<FromChild, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${svc.instance} did not answer "${msg.type}" within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (m: FromChild) => {
      if (m.type !== type) return
      clearTimeout(timer)
      svc.child.off('message', onMessage)
      resolve(m as Extract<FromChild, { type: T }>)
    }
    svc.child.on('message', onMessage)
    svc.child.send(msg)
  })
}

type Closed = CloseReport & { exit: string; ok: boolean }

/** Closes one service through mesh.close() and waits for its process to end by itself. */
async function closeService(svc: Running): Promise<Closed> {
  closing.add(svc.child)
  const exited = new Promise<number | null>((resolve) => {
    if (svc.child.exitCode !== null) resolve(svc.child.exitCode)
    else svc.child.once('exit', (code) => resolve(code))
  })
  const { close } = await ask(svc, { type: 'close' }, 'closed', 5000)
  const code = await Promise.race([exited, sleep(3000).then(() => 'hung' as const)])
  if (code === 'hung') {
    svc.child.kill('SIGKILL')
    return { ...close, exit: 'did not exit within 3 s after close (a handle stayed open); killed', ok: false }
  }
  return { ...close, exit: `exit ${code}`, ok: code === 0 }
}

// --- load ------------------------------------------------------------------------------------

interface LoadResult {
  /** Date.now() when the first checkout went out. */
  startedAt: number
  edge: EdgeStats
  paidBy: Record<string, number>
  seconds: number
}

/** Sends checkouts to web: at most RATE per second, at most CONCURRENCY at once, for RUN_MS. */
async function drive(web: Running): Promise<LoadResult> {
  const pool = new Pool(web.url, { connections: CONCURRENCY })
  const edge = new EdgeRecorder()
  const paidBy: Record<string, number> = {}
  const startedAt = Date.now()
  const start = performance.now()
  const end = start + RUN_MS
  const interval = 1000 / RATE
  let nextSlot = start
  let seq = 0

  const worker = async () => {
    for (;;) {
      const now = performance.now()
      const slot = Math.max(nextSlot, now)
      if (slot >= end) return
      nextSlot = slot + interval
      if (slot > now) await sleep(slot - now)
      const cart = ++seq
      try {
        await edge.time(
          async () => {
            const res = await pool.request({ path: `/checkout/${cart}`, method: 'POST' })
            const body = (await res.body.json()) as { paidBy?: string }
            if (res.statusCode === 200) paidBy[body.paidBy ?? '?'] = (paidBy[body.paidBy ?? '?'] ?? 0) + 1
            return res.statusCode
          },
          (status) => ({ outcome: String(status), ok: status === 200 }),
        )
      } catch {
        // Counted by the recorder under its error code.
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const seconds = (performance.now() - start) / 1000
  await pool.close()
  return { startedAt, edge: edge.stats(), paidBy, seconds }
}

// --- report ----------------------------------------------------------------------------------

function table(rows: (string | number)[][], right: boolean[]): string {
  const cells = rows.map((r) => r.map(String))
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)))
  return cells.map((r) => '  ' + r.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')
}

const ms = (v: number) => v.toFixed(1)
const outcomes = (o: Record<string, number>) =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}×${n}`)
    .join(' ')

function describePolicy(p: ServicePolicy): string {
  const parts = [`${p.balancer.type} (decay ${p.balancer.decay} ms, failures count ${p.balancer.failurePenalty} ms)`, `timeout ${p.timeout} ms`]
  if (p.retries) parts.push(`${p.retries.attempts} retries (per try ${p.retries.perTryTimeout} ms, budget ${p.retries.budgetPercent}% + ${p.retries.budgetMinPerSecond}/s)`)
  if (p.outlier) parts.push(`ejection after ${p.outlier.consecutiveFailures} consecutive failures for ${p.outlier.baseEjectionTime} ms × n`)
  return parts.join('; ')
}

function main(): Promise<number> {
  return run().catch((err: unknown) => fatal(err instanceof Error ? err.message : String(err)))
}

async function run(): Promise<number> {
  console.log('meshlet demo: client → web (Fastify) → orders (Express) → payments ×2 (node:http), one process each\n')

  // Every process loads its modules at once; then each starts once the ports it calls are known.
  const launched = {
    web: launch('./demo-web.js', 'web'),
    orders: launch('./demo-orders.js', 'orders'),
    payA: launch('./demo-payments.js', 'payments-a'),
    payB: launch('./demo-payments.js', 'payments-b'),
  }
  const [payA, payB] = await Promise.all([start(launched.payA), start(launched.payB, { slowMs: SLOW_MS, failRate: FAIL_RATE })])
  const orders = await start(launched.orders, { upstream: [payA.url, payB.url] })
  const web = await start(launched.web, { upstream: [orders.url] })
  const services = [web, orders, payA, payB]
  const nameOf = new Map(services.map((s) => [s.url, s.instance]))
  const role: Record<string, string> = { 'payments-a': 'healthy', 'payments-b': `+${SLOW_MS} ms, ${FAIL_RATE * 100}% 503/reset` }
  for (const s of services) console.log(`  ${s.instance.padEnd(10)}  ${s.url}  pid ${s.child.pid}${role[s.instance] ? `  (${role[s.instance]})` : ''}`)
  console.log(`\n  started in ${Math.round(performance.now() - t0)} ms; sending checkouts for ${RUN_MS / 1000} s at ≤ ${RATE}/s, ≤ ${CONCURRENCY} in flight …\n`)

  const load = await drive(web)
  const reports = new Map<string, ServiceReport>()
  for (const s of services) reports.set(s.instance, (await ask(s, { type: 'report' }, 'report')).report)
  const w = reports.get('web')!
  const o = reports.get('orders')!
  const a = reports.get('payments-a')!
  const b = reports.get('payments-b')!

  // Edges, each timed by its caller; OTel: the caller mesh's http.client.request.duration count.
  const retriesSent = o.otel.retries.sent ?? 0
  console.log(`edges (${load.edge.calls} checkouts in ${load.seconds.toFixed(1)} s = ${Math.round(load.edge.calls / load.seconds)}/s; latency as the caller saw it)`)
  const edgeRow = (name: string, e: EdgeStats, otel: string, note: string) => [name, e.calls, e.errors, ms(e.p50), ms(e.p99), ms(e.max), otel, note]
  console.log(
    table(
      [
        ['edge', 'calls', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'OTel calls', 'outcomes'],
        edgeRow('client → web', load.edge, '-', outcomes(load.edge.outcomes)),
        edgeRow('web → orders', w.edge!, String(w.otel.clientCalls.orders?.count ?? 0), outcomes(w.edge!.outcomes)),
        edgeRow('orders → payments', o.edge!, String(o.otel.clientCalls.payments?.count ?? 0), `${outcomes(o.edge!.outcomes)}; ${o.edge!.calls + retriesSent} attempts`),
      ],
      [false, true, true, true, true, true, true, false],
    ),
  )

  // The payments endpoints as orders' mesh sees them, next to what each instance did itself.
  const endpoints = o.inspect.destinations.payments?.endpoints ?? []
  const totalAttempts = endpoints.reduce((n, e) => n + e.requests, 0)
  const servedBy: Record<string, ServiceReport> = { 'payments-a': a, 'payments-b': b }
  const policy = o.inspect.destinations.payments?.policy
  console.log(`\npayments endpoints in orders' mesh.inspect(), next to what each instance did`)
  if (policy) console.log(`  policy: ${describePolicy(policy)}`)
  const epRow = (e: EndpointSnapshot) => {
    const name = nameOf.get(e.url) ?? e.url
    const s = servedBy[name]?.served
    return [
      `${name} ${e.url.replace('http://', '')}`,
      e.requests,
      `${Math.round((100 * e.requests) / Math.max(1, totalAttempts))}%`,
      e.failures,
      ms(e.latencyMs),
      e.ejected ? `yes, ${e.ejectedForMs} ms left` : 'no',
      e.ejections,
      s ? s.requests : '-',
      s ? `${s.injected503}×503 ${s.injectedResets}×reset` : '-',
      load.paidBy[name] ?? 0,
    ]
  }
  console.log(
    table(
      [['endpoint', 'requests', 'share', 'failures', 'latencyMs', 'ejected', 'ejections', 'served', 'injected', 'paid'], ...endpoints.map(epRow)],
      [false, true, true, true, true, false, true, true, false, true],
    ),
  )
  console.log(`  requests, failures: attempts the balancer sent there and saw fail; latencyMs: its peak-EWMA now;`)
  console.log(`  served, injected: what the instance itself counted; paid: checkouts the client got back paid by it`)

  const since = (at: number) => `${((at - load.startedAt) / 1000).toFixed(2)} s`
  // Retries, ejections, breaker: OTel metrics and diagnostics-channel events, which must agree.
  const retryEvents = Object.values(o.events.retriesAfter).reduce((n, v) => n + v, 0)
  const after = Object.entries(o.events.retriesAfter).map(([url, n]) => `${n} after ${nameOf.get(url) ?? url}`)
  const faults = (b.served?.injected503 ?? 0) + (b.served?.injectedResets ?? 0) + (a.served?.injected503 ?? 0) + (a.served?.injectedResets ?? 0)
  console.log(`\nresilience in orders → payments`)
  console.log(`  faults injected   ${faults} (payments-b: ${b.served?.injected503 ?? 0}×503, ${b.served?.injectedResets ?? 0}×reset)`)
  console.log(`  retries           ${retriesSent} sent (meshlet.retries{outcome=sent}); ${retryEvents} meshlet:retry events: ${after.join(', ') || 'none'}`)
  console.log(`  ejections         ${o.otel.ejections} (meshlet.endpoint.ejections); ${o.events.ejected.length} meshlet:endpoint:ejected, ${o.events.restored.length} meshlet:endpoint:restored events`)
  const restored = [...o.events.restored]
  for (const e of o.events.ejected) {
    const back = restored.findIndex((r) => r.endpoint === e.endpoint && r.at >= e.at)
    const backAt = back < 0 ? 'not yet back' : `back at ${since(restored.splice(back, 1)[0]!.at)}`
    console.log(`                    ${nameOf.get(e.endpoint) ?? e.endpoint} at ${since(e.at)}: ejected for ${e.durationMs} ms after ${e.consecutiveFailures} consecutive failures; ${backAt}`)
  }
  if (o.events.ejected.length === 0 && policy?.outlier) {
    console.log(`                    none: each failure costs an endpoint ${policy.balancer.failurePenalty} ms in the balancer, which then sends it little`)
    console.log(`                    until that decays, so it seldom fails ${policy.outlier.consecutiveFailures} times in a row; ejection is the backstop`)
  }
  const breaker = o.inspect.destinations.payments?.breaker
  const transitions = o.events.breaker.map((t) => `${t.state} at ${since(t.at)}`)
  console.log(`  breaker           ${breaker ? `${breaker.state} (${breaker.fires} fires, ${breaker.failures} failures)` : 'none'}${transitions.length ? `; was ${transitions.join(', ')}` : ''}`)
  console.log(`  retry budget left ${o.inspect.destinations.payments?.retryBudget?.balance ?? '-'}`)
  console.log(`  served            orders ${outcomes(o.otel.serverRequests)}; payments-a ${outcomes(a.otel.serverRequests)}; payments-b ${outcomes(b.otel.serverRequests)} (http.server.request.duration)`)

  // Close in call order, so nothing is sent to a service that is already gone.
  console.log(`\nshutdown (mesh.close(): not-ready → stop-accepting → drained → closed; then the process must exit by itself)`)
  const closed: [string, Closed][] = []
  for (const group of [[web], [orders], [payA, payB]]) {
    closed.push(...(await Promise.all(group.map(async (s): Promise<[string, Closed]> => [s.instance, await closeService(s)]))))
  }
  for (const [name, c] of closed) console.log(`  ${name.padEnd(10)}  ${c.ms} ms, ${c.exit}  [${c.phases.join(', ')}]`)

  // Verdict.
  const problems: string[] = []
  const failureRate = load.edge.errors / Math.max(1, load.edge.calls)
  if (load.edge.calls === 0) problems.push('the client completed no request')
  if (failureRate > MAX_CLIENT_FAILURE_RATE) problems.push(`the client saw ${load.edge.errors} failures (${(failureRate * 100).toFixed(1)}% > ${MAX_CLIENT_FAILURE_RATE * 100}%)`)
  for (const [name, c] of closed) if (!c.ok) problems.push(`${name}: ${c.exit}`)
  const notes: string[] = []
  const [epA, epB] = [endpoints.find((e) => nameOf.get(e.url) === 'payments-a'), endpoints.find((e) => nameOf.get(e.url) === 'payments-b')]
  if (epA && epB) notes.push(epB.requests < epA.requests ? `payments-b got ${epB.requests} of ${totalAttempts} attempts (${Math.round((100 * epB.requests) / Math.max(1, totalAttempts))}%)` : `warning: payments-b was not avoided (${epB.requests} vs ${epA.requests} attempts)`)
  notes.push(`${faults} injected faults → ${o.edge!.errors} failed payment calls, ${load.edge.errors} failed checkouts`)
  if (retriesSent !== retryEvents) notes.push(`warning: meshlet.retries (${retriesSent}) and meshlet:retry events (${retryEvents}) disagree`)

  console.log(`\n${problems.length === 0 ? 'OK' : 'FAILED'}: ${[...problems, ...notes].join('; ')}; total ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return problems.length === 0 ? 0 : 1
}

const code = await main()
clearTimeout(hardTimeout)
process.exitCode = code
