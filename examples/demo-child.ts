/**
 * The runtime of one demo service in its own process (forked by demo.ts): OpenTelemetry metrics into
 * an in-memory exporter, counters on the mesh's diagnostics channels, and the IPC conversation with
 * the driver (listening → inspect… → report → close → closed).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { setTimeout as sleep } from 'node:timers/promises'
import { metrics } from '@opentelemetry/api'
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type MetricData } from '@opentelemetry/sdk-metrics'
import type { Mesh } from '@meshlet/core'
import type { CloudEventCounts, EdgeRecorder, FromChild, MeshEvents, OtelSummary, ServedRecorder, ServiceConfig, ToChild } from './demo-shared.js'

/** One running service, as its module's `start()` returns it. */
export interface ChildService {
  mesh: Mesh
  port: number
  /** The outbound edge this service calls, if any. */
  edge?: EdgeRecorder
  served?: ServedRecorder
  /** CloudEvents counts, for a service that publishes or handles them. */
  cloudEvents?: () => CloudEventCounts
  /** Releases what the mesh does not own (agents, app resources), after mesh.close(). */
  close?: () => Promise<void>
}

/**
 * A MeterProvider with an in-memory exporter, set as the global one. Call it before createMesh: the
 * mesh takes its meter from the global provider when it is created.
 */
function startTelemetry(): { collect(): Promise<OtelSummary>; shutdown(): Promise<void> } {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  // The interval is long (the timer is unref'd); the driver pulls with forceFlush() when it asks.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
  const provider = new MeterProvider({ readers: [reader] })
  metrics.setGlobalMeterProvider(provider)
  return {
    async collect() {
      await reader.forceFlush()
      const all = exporter.getMetrics()
      const latest = all.at(-1)?.scopeMetrics.flatMap((s) => s.metrics) ?? []
      return summarize(latest)
    },
    async shutdown() {
      await provider.shutdown()
      metrics.disable()
    },
  }
}

function summarize(data: readonly MetricData[]): OtelSummary {
  const out: OtelSummary = { clientCalls: {}, serverRequests: {}, rpcClientCalls: {}, rpcServerCalls: {}, ejections: 0, breaker: {} }
  const add = (rec: Record<string, number>, key: string, n: number) => (rec[key] = (rec[key] ?? 0) + n)
  for (const m of data) {
    if (m.dataPointType === DataPointType.HISTOGRAM) {
      for (const p of m.dataPoints) {
        const a = p.attributes
        if (m.descriptor.name === 'http.client.request.duration') {
          const c = (out.clientCalls[String(a['server.address'])] ??= { count: 0, errors: 0 })
          c.count += p.value.count
          if (a['error.type'] !== undefined) c.errors += p.value.count
        } else if (m.descriptor.name === 'http.server.request.duration') {
          add(out.serverRequests, String(a['http.response.status_code'] ?? a['error.type']), p.value.count)
        } else if (m.descriptor.name === 'rpc.client.call.duration') {
          const c = (out.rpcClientCalls[String(a['server.address'])] ??= { count: 0, errors: 0 })
          c.count += p.value.count
          if (a['error.type'] !== undefined) c.errors += p.value.count
        } else if (m.descriptor.name === 'rpc.server.call.duration') {
          // error.type is the status name of a call that did not end OK.
          add(out.rpcServerCalls, String(a['error.type'] ?? 'OK'), p.value.count)
        }
      }
    } else if (m.dataPointType === DataPointType.SUM) {
      for (const p of m.dataPoints) {
        const a = p.attributes
        if (m.descriptor.name === 'meshlet.endpoint.ejections') out.ejections += p.value
        else if (m.descriptor.name === 'meshlet.breaker.state') add(out.breaker, String(a['meshlet.breaker.state']), p.value)
      }
    }
  }
  return out
}

/** Counts what the mesh publishes on its `meshlet:*` diagnostics channels. */
function watchMeshEvents(): { events: MeshEvents; drain: string[]; closeStartedAt(): number; stop(): void } {
  const events: MeshEvents = { ejected: [], restored: [], breaker: [], config: [] }
  const drain: string[] = []
  let closeStart = 0
  let closeStartedAt = 0
  const at = () => Date.now()
  const handlers: Record<string, (msg: unknown) => void> = {
    'meshlet:endpoint:ejected': (m) => {
      const e = m as { endpoint: string; durationMs: number; consecutiveFailures: number }
      events.ejected.push({ endpoint: e.endpoint, durationMs: e.durationMs, consecutiveFailures: e.consecutiveFailures, at: at() })
    },
    'meshlet:endpoint:restored': (m) => events.restored.push({ endpoint: (m as { endpoint: string }).endpoint, at: at() }),
    'meshlet:breaker:state': (m) => events.breaker.push({ state: (m as { state: string }).state, at: at() }),
    'meshlet:config:applied': (m) => {
      const { service, source } = m as { service: string; source: string }
      events.config.push({ event: 'applied', service, source, at: at() })
    },
    'meshlet:config:rejected': (m) => {
      const { service, source, message } = m as { service: string; source: string; message: string }
      events.config.push({ event: 'rejected', service, source, detail: message, at: at() })
    },
    'meshlet:drain': (m) => {
      const { phase, stillRunning } = m as { phase: string; stillRunning?: number }
      if (phase === 'not-ready') {
        closeStart = performance.now()
        closeStartedAt = Date.now()
      }
      drain.push(`${phase}${stillRunning ? ` (${stillRunning} still running)` : ''} +${Math.round(performance.now() - closeStart)}ms`)
    },
  }
  for (const [name, fn] of Object.entries(handlers)) subscribe(name, fn)
  return {
    events,
    drain,
    closeStartedAt: () => closeStartedAt,
    stop: () => {
      for (const [name, fn] of Object.entries(handlers)) unsubscribe(name, fn)
    },
  }
}

/** Sends to the driver; resolves once the message is written to the IPC channel. */
function send(msg: FromChild): Promise<void> {
  return new Promise((resolve) => process.send!(msg, undefined, {}, () => resolve()))
}

/** Polls `check` every 10 ms until it returns a value; after `timeoutMs`, fails with `describe()`. */
async function waitUntil<T>(check: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (performance.now() > deadline) throw new Error(`${describe()} after ${timeoutMs} ms`)
    await sleep(10)
  }
}

/**
 * A started service is one the others can find and that can find what it calls: its lease with the
 * control endpoint is taken (the adapters register once the server listens), and the control
 * endpoint has shown its mesh the upstream instances it expects.
 */
async function joined(svc: ChildService, config: ServiceConfig): Promise<string> {
  const lease = await waitUntil(
    () => svc.mesh.inspect().control?.lease ?? undefined,
    4000,
    () => `${config.instance} did not register with the control endpoint (${svc.mesh.inspect().control?.lastError ?? 'no error reported'})`,
  )
  const up = config.upstream
  if (up !== undefined) {
    await waitUntil(
      () => ((svc.mesh.destination(up.service)?.snapshot().endpoints.length ?? 0) >= up.instances ? true : undefined),
      4000,
      () => `${config.instance} saw ${svc.mesh.destination(up.service)?.snapshot().endpoints.length ?? 0} of ${up.instances} ${up.service} instances through the control endpoint`,
    )
  }
  return lease
}

/**
 * Runs a service in this child process: says `loaded` (its modules are imported, so the driver can
 * load every service at once), sets up telemetry, starts on `start` and answers with its port and
 * lease once it joined the mesh, answers `inspect` and `report`, and on `close` drains through
 * mesh.close() and lets the process end by itself (a handle left open shows up as a hang).
 */
export function runChild(start: (config: ServiceConfig) => Promise<ChildService>): void {
  if (process.send === undefined) {
    console.error('This is a service of the meshlet demo; run `pnpm demo` instead.')
    process.exit(2)
  }
  const telemetry = startTelemetry()
  const watch = watchMeshEvents()
  // Without the driver there is no one to report to: stop at once.
  const orphaned = () => process.exit(3)
  process.on('disconnect', orphaned)

  const fail = (err: unknown) => {
    void send({ type: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) }).then(() => process.exit(1))
  }

  let running: { svc: ChildService; instance: string } | undefined
  process.on('message', (msg: ToChild) => {
    if (msg.type === 'start') {
      start(msg.config)
        .then(async (svc) => {
          running = { svc, instance: msg.config.instance }
          const lease = await joined(svc, msg.config)
          await send({ type: 'listening', port: svc.port, lease })
        })
        .catch(fail)
      return
    }
    if (running === undefined) return fail(new Error(`"${msg.type}" came before the service started`))
    const { svc, instance } = running
    if (msg.type === 'inspect') {
      void send({ type: 'inspect', inspect: svc.mesh.inspect() })
    } else if (msg.type === 'report') {
      const windows = msg.windows.map((w) => ({ edge: svc.edge?.stats(w), served: svc.served?.stats(w) }))
      telemetry.collect().then(
        (otel) => void send({ type: 'report', report: { instance, edge: svc.edge?.stats(), otel, events: watch.events, inspect: svc.mesh.inspect(), served: svc.served?.stats(), windows, cloudEvents: svc.cloudEvents?.() } }),
        fail,
      )
    } else if (msg.type === 'close') {
      const c0 = performance.now()
      svc.mesh
        .close()
        .then(() => svc.close?.())
        .then(() => telemetry.shutdown())
        .then(() => {
          watch.stop()
          return send({ type: 'closed', close: { startedAt: watch.closeStartedAt(), phases: watch.drain, ms: Math.round(performance.now() - c0) } })
        })
        .then(() => {
          // Nothing should be left to keep the process alive once the IPC channel is gone.
          process.off('disconnect', orphaned)
          process.disconnect()
        }, fail)
    }
  })
  void send({ type: 'loaded' })
}
