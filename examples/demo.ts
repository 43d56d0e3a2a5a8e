/**
 * The meshlet demo: `pnpm demo`.
 *
 *                HTTP               HTTP                gRPC (meshlet:///payments)
 *   client ──► web (Fastify) ──► orders (Express) ──┬─► payments-a (grpc-js)
 *                                                   └─► payments-b (grpc-js, +40 ms, 20% UNAVAILABLE/INTERNAL)
 *                  ╰───────── every mesh registers with and watches ─────────╯
 *                          the control endpoint, embedded in this process
 *
 * The driver starts a control endpoint (`startControl`, data in a temporary directory removed at the
 * end) and gives each service only its URL and the join token: each service's mesh registers its
 * instance and learns the instances it calls, and the policy for calling them, from it. The payments
 * policy is a `ServicePolicy` applied with the real `meshlet` CLI: first with the round-robin
 * balancer, and midway through the traffic again with the latency-aware p2c-peak-ewma, so that the
 * slow, flaky payments-b loses most of its share while checkouts keep flowing. orders calls payments
 * over gRPC: the mesh's client stack retries (one budget, as for HTTP) and its grpc-js LB policy
 * pins each attempt to the instance the stack picked. orders publishes a `shop.order.created`
 * CloudEvent for each paid order to the broker embedded in the control endpoint; notifications
 * handles those of 50 or more through a trigger whose CESQL filter runs in the broker.
 *
 * The driver sends checkouts to web at a bounded rate, asks every service for its numbers (its own
 * timings, OpenTelemetry metrics, diagnostics-channel events, mesh.inspect()) split into the windows
 * before and after the change. Retries are counted three ways, which must agree: each payments
 * instance records every attempt it served, and whether orders' mesh sent it as a retry (`grpc-previous-rpc-attempts`); orders records
 * its calls, so attempts − calls must equal those retries. It prints a report, and closes everything
 * through mesh.close(), which deregisters first. It exits non-zero when the client saw failures above 1%, the CLI or the policy
 * change failed, a service crashed, did not exit after closing or stayed registered, an event
 * publish failed or notifications did not handle each matching event, the control
 * endpoint logged an error, or the whole ran past 18 s.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import { startControl, type ControlServer, type Logger } from '@meshlet/control'
import { INSTANCE_KIND, type EndpointSnapshot, type MeshSnapshot, type ServicePolicy } from '@meshlet/core'
import type { TriggerStatus } from '@meshlet/events'
import { EdgeRecorder, NOTIFY_FILTER, NOTIFY_TRIGGER, type CloseReport, type EdgeStats, type FromChild, type ServiceConfig, type ServiceReport, type ToChild, type Window } from './demo-shared.js'

/** Checkouts before the policy change starts, and after orders' mesh runs on the new policy. */
const CHANGE_AT_MS = 1500
const AFTER_MS = 2500
const RATE = 250 // requests per second, at most
const CONCURRENCY = 16
const MAX_CLIENT_FAILURE_RATE = 0.01
// About 8 s on an idle machine; a busy one (two cores shared with other work) took 13 s.
const HARD_TIMEOUT_MS = 18_000
const SLOW_MS = 40
const FAIL_RATE = 0.2

/**
 * The payments ServicePolicy, as an operator would keep it in a file. The demo applies it with
 * `balancer: round-robin`, then midway with p2c-peak-ewma: every field but the balancer stays.
 */
const policyYaml = (balancer: string) => `apiVersion: meshlet.dev/v1
kind: ServicePolicy
metadata: { name: payments, namespace: default }
spec:
  service: payments
  # Generous for a ~5 ms call, so that a busy machine slows the demo down without failing it.
  timeout: 3s
  # At most 2 retries by the mesh's client stack (the same retry role and budget as HTTP calls), on
  # UNAVAILABLE, and for Charge, which orders marks idempotent (it carries an idempotency key), on
  # INTERNAL too. Each retry goes to an instance the call has not tried yet; an attempt with no answer
  # within perTryTimeout is cancelled and retried.
  retries: { attempts: 2, perTryTimeout: 1s, backoff: { base: 5ms, max: 50ms } }
  # Ejection after 5 failures in a row, for 1 s (scaled down from 30 s for a few seconds of traffic).
  outlier: { consecutiveFailures: 5, interval: 1s, baseEjectionTime: 1s }
  balancer: ${balancer}
`
const BALANCER_BEFORE = 'round-robin'
// Peak-EWMA decay scaled down as well (default 10 s): each failure costs an endpoint 1 s of latency.
const BALANCER_AFTER = '{ type: p2c-peak-ewma, decay: 1s }'
const TYPE_AFTER = 'p2c-peak-ewma'

const t0 = performance.now()
const children = new Set<ChildProcess>()
const closing = new Set<ChildProcess>()
/** The temporary directory: the control endpoint's data and the policy file. */
const tmp = mkdtempSync(join(tmpdir(), 'meshlet-demo-'))

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

function fatal(message: string, code = 1): never {
  console.error(`\ndemo FAILED: ${message}`)
  killAll()
  rmSync(tmp, { recursive: true, force: true })
  process.exit(code)
}

const hardTimeout = setTimeout(() => fatal(`still running after ${HARD_TIMEOUT_MS / 1000} s; killed every service.`, 2), HARD_TIMEOUT_MS)
process.once('SIGINT', () => fatal('interrupted.', 130))

// --- the control endpoint and the CLI ---------------------------------------------------------

/** The control endpoint's log: shown, tokens shortened; errors count against the run. */
const controlErrors: string[] = []
const controlLog: Logger = {
  info: (m) => console.log(`  control: ${m.replace(/(msh(?:adm|join)_)\S+/g, '$1…')}`),
  warn: (m) => console.warn(`  control warning: ${m}`),
  error: (m) => {
    controlErrors.push(m)
    console.error(`  control error: ${m}`)
  },
}

/** Every change the control endpoint made durable, with when (Date.now()). */
interface Change {
  at: number
  type: string
  kind: string
  name: string
  resourceVersion: number
}

/** The `meshlet` bin of @meshlet/control, found the way npx would find it. */
function cliPath(): string {
  const require = createRequire(import.meta.url)
  const pkg = require.resolve('@meshlet/control/package.json')
  return join(dirname(pkg), (require(pkg) as { bin: { meshlet: string } }).bin.meshlet)
}

interface CliRun {
  command: string
  code: number | null
  output: string
  ms: number
}

/** Runs `meshlet …` as a child process (it must not block this one: the endpoint lives here). */
function meshlet(args: string[], shown: string[]): Promise<CliRun> {
  const start = performance.now()
  const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += String(d)))
  child.stderr.on('data', (d: Buffer) => (output += String(d)))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => {
      children.delete(child)
      resolve({ command: `meshlet ${shown.join(' ')}`, code, output, ms: performance.now() - start })
    })
  })
}

/** Writes the policy file and applies it with the CLI; a CLI that fails fails the demo. */
async function applyPolicy(control: ControlServer, balancer: string): Promise<CliRun> {
  const file = join(tmp, 'policy.yaml')
  await writeFile(file, policyYaml(balancer))
  const args = ['apply', '-f', file, '--control', control.url, '--token']
  const run = await meshlet([...args, control.adminToken], [...args, '<admin token>'])
  if (run.code !== 0) {
    printCli(run)
    fatal(`${run.command} exited with ${run.code}`)
  }
  return run
}

/** Prints the command and what it said. */
function printCli(run: CliRun): void {
  console.log(`  $ ${run.command}`)
  console.log(run.output.trimEnd().replace(/^/gm, '    '))
}

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
  lease: string
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

/** Starts a launched service once it has loaded, and waits until it listens, registered and found its upstream. */
async function start(svc: Launched, config: Omit<ServiceConfig, 'instance'>): Promise<Running> {
  await svc.loaded
  const { port, lease } = await ask(svc, { type: 'start', config: { instance: svc.instance, ...config } }, 'listening', 6000)
  return { ...svc, port, lease, url: `http://127.0.0.1:${port}` }
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

/** Asks orders for its mesh.inspect() every 10 ms until the payments policy satisfies `ok`. */
async function waitForPolicy(orders: Running, ok: (p: ServicePolicy) => boolean, timeoutMs: number): Promise<{ inspect: MeshSnapshot; at: number }> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const { inspect } = await ask(orders, { type: 'inspect' }, 'inspect')
    const policy = inspect.destinations.payments?.policy
    if (policy !== undefined && ok(policy)) return { inspect, at: Date.now() }
    if (performance.now() > deadline) {
      const why = inspect.lastRejectedConfig?.message ?? `its policy: ${policy ? describePolicy(policy) : 'none'}; control: ${JSON.stringify(inspect.control)}`
      fatal(`orders' mesh did not take the payments policy within ${timeoutMs} ms (${why})`)
    }
    await sleep(10)
  }
}

type Closed = CloseReport & { exit: string; ok: boolean }

/** Closes one service through mesh.close() and waits for its process to end by itself. */
/** Polls the broker's status of notifications' trigger every 20 ms until `ok` holds. */
async function waitForTrigger(control: ControlServer, ok: (t: TriggerStatus) => boolean, timeoutMs: number): Promise<TriggerStatus> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const t = await control.broker?.trigger('default', NOTIFY_TRIGGER)
    if (t !== undefined && ok(t)) return t
    if (performance.now() > deadline) throw new Error(`trigger ${NOTIFY_TRIGGER}: ${t === undefined ? 'not known to the broker' : `not ready (${t.reason ?? `lag ${t.lag}`})`} after ${timeoutMs} ms`)
    await sleep(20)
  }
}

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
  /** Date.now() when the first checkout went out, and after the last came back. */
  startedAt: number
  endedAt: number
  edge: EdgeRecorder
  paidBy: Record<string, number>
  seconds: number
}

/**
 * Sends checkouts to web: at most RATE per second, at most CONCURRENCY at once, until `traffic.end`
 * (performance.now(); set once the policy change took effect, however long the CLI took).
 */
async function drive(web: Running, startedAt: number, traffic: { end: number }): Promise<LoadResult> {
  const pool = new Pool(web.url, { connections: CONCURRENCY })
  const edge = new EdgeRecorder()
  const paidBy: Record<string, number> = {}
  const start = performance.now()
  const interval = 1000 / RATE
  let nextSlot = start
  let seq = 0

  const worker = async () => {
    for (;;) {
      const now = performance.now()
      const slot = Math.max(nextSlot, now)
      if (slot >= traffic.end) return
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
  return { startedAt, endedAt: Date.now(), edge, paidBy, seconds }
}

interface PolicyChange {
  /** Date.now() when the CLI was started, and when orders' mesh.inspect() first showed the new policy. */
  startedAt: number
  appliedAt: number
  cli: CliRun
  before: MeshSnapshot
  after: MeshSnapshot
}

/** CHANGE_AT_MS into the traffic, applies the new payments policy with the CLI, and once orders runs on it lets the traffic go on for AFTER_MS. */
async function changePolicyMidway(control: ControlServer, changes: Change[], orders: Running, trafficStart: number, traffic: { end: number }): Promise<PolicyChange> {
  await sleep(Math.max(0, trafficStart + CHANGE_AT_MS - Date.now()))
  const { inspect: before } = await ask(orders, { type: 'inspect' }, 'inspect')
  const startedAt = Date.now()
  // Orders is watched from the start, so the switch is known within a few ms of the CLI's write.
  const [cli, { inspect: after, at: appliedAt }] = await Promise.all([
    applyPolicy(control, BALANCER_AFTER),
    waitForPolicy(orders, (p) => p.balancer.type === TYPE_AFTER, 8000).then((r) => {
      traffic.end = performance.now() + AFTER_MS
      return r
    }),
  ])
  console.log(`at ${since(trafficStart, startedAt)}, while the checkouts go on: the payments balancer ${BALANCER_BEFORE} → ${TYPE_AFTER}`)
  printCli(cli)
  const stored = changes.find((c) => c.kind === 'ServicePolicy' && c.type === 'MODIFIED' && c.at >= startedAt)
  const storedAt = stored ? `the endpoint stored the change ${stored.at - startedAt} ms after the CLI started (resourceVersion ${stored.resourceVersion}), and ` : ''
  console.log(`  ${storedAt}orders' mesh.inspect() showed it at ${since(trafficStart, appliedAt)}${stored ? `, ${appliedAt - stored.at} ms later` : ''}; the CLI ran ${Math.round(cli.ms)} ms\n`)
  return { startedAt, appliedAt, cli, before, after }
}

// --- report ----------------------------------------------------------------------------------

function table(rows: (string | number)[][], right: boolean[]): string {
  const cells = rows.map((r) => r.map(String))
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)))
  return cells.map((r) => '  ' + r.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')
}

const ms = (v: number) => v.toFixed(1)
const pct = (n: number, of: number) => `${Math.round((100 * n) / Math.max(1, of))}%`
const since = (from: number, at: number) => `${((at - from) / 1000).toFixed(2)} s`
const outcomes = (o: Record<string, number>) =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}×${n}`)
    .join(' ')

function describeBalancer(p: ServicePolicy): string {
  return p.balancer.type === 'p2c-peak-ewma' ? `${p.balancer.type} (decay ${p.balancer.decay} ms, failures count ${p.balancer.failurePenalty} ms)` : p.balancer.type
}

function describePolicy(p: ServicePolicy): string {
  const parts = [describeBalancer(p), `timeout ${p.timeout} ms`]
  if (p.retries) parts.push(`${p.retries.attempts} retries (per try ${p.retries.perTryTimeout} ms, budget ${p.retries.budgetPercent}% + ${p.retries.budgetMinPerSecond}/s)`)
  if (p.outlier) parts.push(`ejection after ${p.outlier.consecutiveFailures} consecutive failures for ${p.outlier.baseEjectionTime} ms × n`)
  return parts.join('; ')
}

function main(): Promise<number> {
  return run().catch((err: unknown) => fatal(err instanceof Error ? (err.stack ?? err.message) : String(err)))
}

async function run(): Promise<number> {
  console.log('meshlet demo: client → web (Fastify) → orders (Express) → gRPC → payments ×2 (grpc-js), one process each,')
  console.log('finding each other through a control endpoint embedded in the demo; orders publishes a CloudEvent per paid order,')
  console.log('and notifications handles the large ones through a trigger with a CESQL filter.\n')

  // Every service process loads its modules while the control endpoint starts.
  const launched = {
    web: launch('./demo-web.js', 'web'),
    orders: launch('./demo-orders.js', 'orders'),
    payA: launch('./demo-payments.js', 'payments-a'),
    payB: launch('./demo-payments.js', 'payments-b'),
    notify: launch('./demo-notifications.js', 'notifications'),
  }
  console.log(`control endpoint: startControl({ port: 0, dataDir: '${join(tmp, 'data')}' }) in this process; removed at the end`)
  const control = await startControl({ port: 0, dataDir: join(tmp, 'data'), log: controlLog })
  const changes: Change[] = []
  control.state.subscribe((e) => {
    if (e.object !== null) changes.push({ at: Date.now(), type: e.type, kind: e.object.kind, name: e.object.metadata.name, resourceVersion: e.resourceVersion })
  })
  console.log(`  listening on ${control.url}; meshlet below is node ${relative(process.cwd(), cliPath())}, the CLI of @meshlet/control\n`)

  // The services get the endpoint and the join token, nothing else: they start all at once, and each
  // is started once it registered and the control endpoint showed it the instances it calls.
  // Meanwhile the CLI applies the payments policy; orders takes it whenever it arrives.
  const joinWith = { control: control.url, token: control.joinToken }
  const [[payA, payB, orders, web, notify], firstApply] = await Promise.all([
    Promise.all([
      start(launched.payA, joinWith),
      start(launched.payB, { ...joinWith, slowMs: SLOW_MS, failRate: FAIL_RATE }),
      start(launched.orders, { ...joinWith, upstream: { service: 'payments', instances: 2 } }),
      start(launched.web, { ...joinWith, upstream: { service: 'orders', instances: 1 } }),
      start(launched.notify, joinWith),
    ]),
    applyPolicy(control, BALANCER_BEFORE),
  ])
  const services = [web, orders, payA, payB, notify]
  const nameOf = new Map(services.map((s) => [s.url, s.instance]))
  const role: Record<string, string> = { notifications: `trigger ${NOTIFY_TRIGGER}: ${NOTIFY_FILTER}`, 'payments-a': 'healthy, gRPC', 'payments-b': `gRPC, +${SLOW_MS} ms, ${FAIL_RATE * 100}% UNAVAILABLE/INTERNAL` }
  const registered = control.state.instances()
  console.log(`services, started together; each registered with the control endpoint (${registered.length} instances there) and found what it calls there`)
  for (const s of services) console.log(`  ${s.instance.padEnd(13)}  ${s.url}  pid ${s.child.pid}  lease ${s.lease.slice(0, 8)}${role[s.instance] ? `  (${role[s.instance]})` : ''}`)

  console.log(`\nthe payments policy, applied with the CLI while the services started:`)
  printCli(firstApply)
  const { inspect: first } = await waitForPolicy(orders, (p) => p.balancer.type === BALANCER_BEFORE, 3000)
  const firstDest = first.destinations.payments!
  console.log(`  orders' mesh.inspect(): payments → ${firstDest.endpoints.map((e) => nameOf.get(e.url) ?? e.url).join(', ')}, balancer ${describeBalancer(firstDest.policy)}; from ${first.control?.url}`)

  // A trigger's consumer starts at the broker's end once the broker sees it (Knative's semantics):
  // events published before that are not its to deliver, so the traffic waits for it.
  const triggerReady = await waitForTrigger(control, (t) => t.ready, 5000)
  console.log(`  broker: trigger ${NOTIFY_TRIGGER} ready (${triggerReady.source}, advertised by ${triggerReady.service}) → ${triggerReady.subscriber}`)

  console.log(`\nstarted in ${Math.round(performance.now() - t0)} ms; sending checkouts at ≤ ${RATE}/s, ≤ ${CONCURRENCY} in flight: for ${CHANGE_AT_MS / 1000} s, then while`)
  console.log(`the policy changes, then for ${AFTER_MS / 1000} s after orders' mesh runs on the new one …\n`)
  const trafficStart = Date.now()
  const traffic = { end: Infinity }
  const [load, change] = await Promise.all([drive(web, trafficStart, traffic), changePolicyMidway(control, changes, orders, trafficStart, traffic)])

  const windows: Window[] = [
    { name: 'before', from: load.startedAt, to: change.startedAt },
    { name: 'while applying', from: change.startedAt, to: change.appliedAt },
    { name: 'after', from: change.appliedAt, to: load.endedAt + 1 },
  ]
  const reports = new Map<string, ServiceReport>()
  // orders first: what it published; then the trigger drains (lag 0) before notifications counts what it got.
  reports.set('orders', (await ask(orders, { type: 'report', windows }, 'report')).report)
  const trigger = await waitForTrigger(control, (t) => t.lag === 0 && t.counters.inFlight === 0, 5000).catch(() => undefined)
  for (const s of services) if (s !== orders) reports.set(s.instance, (await ask(s, { type: 'report', windows }, 'report')).report)
  const w = reports.get('web')!
  const o = reports.get('orders')!
  const a = reports.get('payments-a')!
  const b = reports.get('payments-b')!

  // Edges, each timed by its caller; OTel: the caller mesh's http.client.request.duration (web) or
  // rpc.client.call.duration (orders) count. Attempts and retries: what the payments instances counted.
  const edge = load.edge.stats()
  const sa = a.served!
  const sb = b.served!
  const attemptsServed = sa.requests + sb.requests
  const retriesServed = sa.retries + sb.retries
  console.log(`edges, the whole run (${edge.calls} checkouts in ${load.seconds.toFixed(1)} s = ${Math.round(edge.calls / load.seconds)}/s; latency as the caller saw it)`)
  const edgeRow = (name: string, e: EdgeStats, otel: string, note: string) => [name, e.calls, e.errors, ms(e.p50), ms(e.p99), ms(e.max), otel, note]
  console.log(
    table(
      [
        ['edge', 'calls', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'OTel calls', 'outcomes'],
        edgeRow('client → web', edge, '-', outcomes(edge.outcomes)),
        edgeRow('web → orders', w.edge!, String(w.otel.clientCalls.orders?.count ?? 0), outcomes(w.edge!.outcomes)),
        edgeRow('orders → payments', o.edge!, String(o.otel.rpcClientCalls.payments?.count ?? 0), `${outcomes(o.edge!.outcomes)}; ${attemptsServed} attempts served`),
      ],
      [false, true, true, true, true, true, true, false],
    ),
  )

  // The policy change, window by window: the metric it moves is payments-b's share of the attempts.
  const policyBefore = change.before.destinations.payments!.policy
  const policyAfter = change.after.destinations.payments!.policy
  const applied = o.events.config.filter((c) => c.service === 'payments')
  console.log(`\nthe policy change (ServicePolicy default/payments, applied with meshlet apply at ${since(trafficStart, change.startedAt)})`)
  console.log(`  before  orders' mesh.inspect(): ${describePolicy(policyBefore)}`)
  console.log(`  after   orders' mesh.inspect(): ${describePolicy(policyAfter)}`)
  for (const c of applied) console.log(`  meshlet:config:${c.event} in orders ${c.at < trafficStart ? 'before the traffic' : `at ${since(trafficStart, c.at)}`}: ${c.source}${c.detail ? `: ${c.detail}` : ''}`)
  const clientWin = windows.map((win) => load.edge.stats(win))
  const col = (f: (i: number) => string | number) => windows.map((_, i) => f(i))
  const attempts = (i: number) => (a.windows[i]!.served?.requests ?? 0) + (b.windows[i]!.served?.requests ?? 0)
  const shareB = (i: number) => `${b.windows[i]!.served?.requests ?? 0} of ${attempts(i)} = ${pct(b.windows[i]!.served?.requests ?? 0, attempts(i))}`
  console.log(
    table(
      [
        ['', ...windows.map((x) => x.name)],
        ['window', ...col((i) => `${since(trafficStart, windows[i]!.from)} – ${since(trafficStart, Math.min(windows[i]!.to, load.endedAt))}`)],
        ['balancer in orders', policyBefore.balancer.type, '', policyAfter.balancer.type],
        ['checkouts (failed)', ...col((i) => `${clientWin[i]!.calls} (${clientWin[i]!.errors})`)],
        ['checkout p50 / p99 ms', ...col((i) => `${ms(clientWin[i]!.p50)} / ${ms(clientWin[i]!.p99)}`)],
        ['payment p50 / p99 ms', ...col((i) => `${ms(o.windows[i]!.edge!.p50)} / ${ms(o.windows[i]!.edge!.p99)}`)],
        ['attempts on payments-b', ...col(shareB)],
        ['faults injected', ...col((i) => (b.windows[i]!.served?.injectedUnavailable ?? 0) + (b.windows[i]!.served?.injectedInternal ?? 0))],
        ['retries', ...col((i) => (a.windows[i]!.served?.retries ?? 0) + (b.windows[i]!.served?.retries ?? 0))],
      ],
      [false, true, true, true],
    ),
  )
  console.log(`  while applying: from the CLI's start until orders' mesh.inspect() showed the new policy; each call counts in`)
  console.log(`  the window it started in, each attempt in the one it arrived in. payment: orders → payments as orders timed`)
  console.log(`  it, retries included; attempts: what the payments instances served; retries: attempts that arrived as`)
  console.log(`  the mesh's retries (grpc-previous-rpc-attempts metadata, as gRPC A6 marks them)`)

  // The payments endpoints as orders' mesh sees them, next to what each instance did itself.
  const endpoints = o.inspect.destinations.payments?.endpoints ?? []
  const totalAttempts = endpoints.reduce((n, e) => n + e.requests, 0)
  const servedBy: Record<string, ServiceReport> = { 'payments-a': a, 'payments-b': b }
  const policy = o.inspect.destinations.payments?.policy
  console.log(`\npayments endpoints in orders' mesh.inspect() at the end, next to what each instance did`)
  const epRow = (e: EndpointSnapshot) => {
    const name = nameOf.get(e.url) ?? e.url
    const s = servedBy[name]?.served
    return [
      `${name} ${e.url.replace('http://', '')}`,
      e.requests,
      pct(e.requests, totalAttempts),
      e.failures,
      ms(e.latencyMs),
      e.ejected ? `yes, ${e.ejectedForMs} ms left` : 'no',
      e.ejections,
      s ? s.requests : '-',
      s ? `${s.injectedUnavailable}×UNAVAILABLE ${s.injectedInternal}×INTERNAL` : '-',
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

  // Retries (counted three ways, which must agree), ejections (OTel metrics and diagnostics-channel events), breaker.
  const faults = sa.injectedUnavailable + sa.injectedInternal + sb.injectedUnavailable + sb.injectedInternal
  console.log(`\nresilience in orders → payments, the whole run`)
  console.log(`  faults injected   ${faults} (payments-b: ${sb.injectedUnavailable}×UNAVAILABLE, ${sb.injectedInternal}×INTERNAL)`)
  console.log(`  retries           ${retriesServed} attempts arrived as the mesh's retries (payments-a ${sa.retries}, payments-b ${sb.retries});`)
  console.log(`                    attempts served − calls made = ${attemptsServed} − ${o.edge!.calls} = ${attemptsServed - o.edge!.calls}; orders' balancer recorded ${totalAttempts} attempts (mesh.inspect())`)
  console.log(`  ejections         ${o.otel.ejections} (meshlet.endpoint.ejections); ${o.events.ejected.length} meshlet:endpoint:ejected, ${o.events.restored.length} meshlet:endpoint:restored events`)
  const restored = [...o.events.restored]
  for (const e of o.events.ejected) {
    const back = restored.findIndex((r) => r.endpoint === e.endpoint && r.at >= e.at)
    const backAt = back < 0 ? 'not yet back' : `back at ${since(trafficStart, restored.splice(back, 1)[0]!.at)}`
    console.log(`                    ${nameOf.get(e.endpoint) ?? e.endpoint} at ${since(trafficStart, e.at)}: ejected for ${e.durationMs} ms after ${e.consecutiveFailures} consecutive failures; ${backAt}`)
  }
  if (o.events.ejected.length === 0 && policy?.outlier) {
    console.log(`                    none: round-robin spread the failures, and p2c-peak-ewma charges each failure ${policy.balancer.failurePenalty} ms`)
    console.log(`                    of latency and then sends the endpoint little, so it seldom fails ${policy.outlier.consecutiveFailures} times in a row`)
  }
  const breaker = o.inspect.destinations.payments?.breaker
  const transitions = o.events.breaker.map((t) => `${t.state} at ${since(trafficStart, t.at)}`)
  console.log(`  breaker           ${breaker ? `${breaker.state} (${breaker.fires} fires, ${breaker.failures} failures)` : 'none'}${transitions.length ? `; was ${transitions.join(', ')}` : ''}`)
  console.log(`  served            orders ${outcomes(o.otel.serverRequests)} (http.server.request.duration); payments-a ${outcomes(a.otel.rpcServerCalls)};`)
  console.log(`                    payments-b ${outcomes(b.otel.rpcServerCalls)} (rpc.server.call.duration)`)
  if (policy) console.log(`  policy now        ${describePolicy(policy)}`)

  // CloudEvents: orders publishes each paid order; the broker filters and delivers to notifications.
  const pub = o.cloudEvents ?? {}
  const got = reports.get('notifications')!.cloudEvents ?? {}
  const distinct = (got.received ?? 0) - (got.duplicates ?? 0)
  console.log(`\nevents: orders → broker (embedded in the control endpoint, fsync before each ack) → trigger ${NOTIFY_TRIGGER} → notifications`)
  console.log(`  orders published ${pub.published ?? 0} shop.order.created events (${pub.publishFailed ?? 0} failed, ${pub.publishPending ?? 0} still unanswered when counted); ${pub.matching ?? 0} have amount >= 50`)
  console.log(`  broker: ${trigger ? `delivered ${trigger.counters.delivered}, filtered out ${trigger.counters.filtered}, retried ${trigger.counters.retried}, dead-lettered ${trigger.counters.deadLettered}, lag ${trigger.lag}` : 'the trigger did not catch up within 5 s'}`)
  console.log(`  notifications handled ${got.received ?? 0} deliveries, ${distinct} distinct events (${got.duplicates ?? 0} redelivered)`)
  console.log(`  good: every published event of 50 or more handled once; the filter (${NOTIFY_FILTER}) ran in the broker`)

  // How each mesh follows the control endpoint, and what the endpoint recorded.
  console.log(`\ncontrol: each mesh's inspect().control, and the endpoint's own record`)
  console.log(
    table(
      [
        ['mesh', 'lease', 'source', 'connected', 'resourceVersion', 'configVersion', 'last error'],
        ...services.map((s) => {
          const r = reports.get(s.instance)!.inspect
          const c = r.control
          return [s.instance, c?.lease?.slice(0, 8) ?? '-', c?.source ?? 'static', c?.connected ? 'yes' : 'no', c?.resourceVersion ?? '-', r.configVersion, c?.lastError ?? '-']
        }),
      ],
      [false, false, false, false, true, true, false],
    ),
  )
  const count = (kind: string, type: string) => changes.filter((c) => c.kind === kind && c.type === type).length
  console.log(`  endpoint: resourceVersion ${control.state.resourceVersion}; ${count(INSTANCE_KIND, 'ADDED')} instances registered; ServicePolicy payments created ${count('ServicePolicy', 'ADDED')}×, changed ${count('ServicePolicy', 'MODIFIED')}×`)

  // Close in call order, so nothing is sent to a service that is already gone.
  console.log(`\nshutdown (mesh.close(): not-ready → deregistered → stop-accepting → drained → closed; then the process must exit by itself;`)
  console.log(`deregistered: when the control endpoint recorded its lease's DELETED)`)
  const closed: [Running, Closed][] = []
  for (const group of [[web], [orders], [payA, payB, notify]]) {
    closed.push(...(await Promise.all(group.map(async (s): Promise<[Running, Closed]> => [s, await closeService(s)]))))
  }
  for (const [s, c] of closed) {
    const gone = changes.find((x) => x.kind === INSTANCE_KIND && x.type === 'DELETED' && x.name === s.lease)
    const dereg = gone ? `deregistered +${gone.at - c.startedAt}ms` : 'still registered'
    const [first, ...rest] = c.phases
    console.log(`  ${s.instance.padEnd(13)}  ${c.ms} ms, ${c.exit}  [${[first, dereg, ...rest].join(', ')}]`)
  }
  const left = control.state.instances()
  await control.close()
  await rm(tmp, { recursive: true, force: true })
  console.log(`  control     closed with ${left.length} instances registered; removed ${tmp}`)

  // Verdict.
  const problems: string[] = []
  const failureRate = edge.errors / Math.max(1, edge.calls)
  if (edge.calls === 0) problems.push('the client completed no request')
  if (failureRate > MAX_CLIENT_FAILURE_RATE) problems.push(`the client saw ${edge.errors} failures (${(failureRate * 100).toFixed(1)}% > ${MAX_CLIENT_FAILURE_RATE * 100}%)`)
  for (const [s, c] of closed) if (!c.ok) problems.push(`${s.instance}: ${c.exit}`)
  if (left.length > 0) problems.push(`${left.length} instances stayed registered after their mesh closed: ${left.map((i) => i.spec.service).join(', ')}`)
  if (controlErrors.length > 0) problems.push(`the control endpoint logged ${controlErrors.length} errors`)
  if ((pub.publishFailed ?? 0) > 0) problems.push(`${pub.publishFailed} event publishes failed`)
  if (distinct < (pub.matching ?? 0) || distinct > (pub.matching ?? 0) + (pub.publishPending ?? 0)) problems.push(`notifications handled ${distinct} distinct events; ${pub.matching ?? 0} matching were published`)
  const notes: string[] = []
  const shareOfB = (i: number) => (b.windows[i]!.served?.requests ?? 0) / Math.max(1, attempts(i))
  const [before, afterChange] = [shareOfB(0), shareOfB(2)].map((x) => `${Math.round(100 * x)}%`)
  notes.push(
    shareOfB(2) < shareOfB(0)
      ? `the policy change took payments-b from ${before} to ${afterChange} of the payment attempts`
      : `warning: payments-b's share did not drop after the change (${before} → ${afterChange})`,
  )
  notes.push(`${faults} injected faults → ${o.edge!.errors} failed payment calls, ${edge.errors} failed checkouts`)
  if (attemptsServed - o.edge!.calls !== retriesServed || totalAttempts !== attemptsServed) {
    notes.push(`warning: the retry counts disagree (served ${attemptsServed} − calls ${o.edge!.calls} vs ${retriesServed} arrived as retries; ${totalAttempts} recorded by the balancer)`)
  }

  console.log(`\n${problems.length === 0 ? 'OK' : 'FAILED'}: ${[...problems, ...notes].join('; ')}; total ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return problems.length === 0 ? 0 : 1
}

const code = await main()
clearTimeout(hardTimeout)
process.exitCode = code
