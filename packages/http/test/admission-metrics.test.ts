/**
 * Admission refusals through a real OpenTelemetry SDK: `meshlet.admission.rejected` by reason
 * (the same counts inspect() shows), `meshlet.admission.queue.duration` by outcome, and the load a
 * saturated server reports reaching the client balancer's endpoint state.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import type { Histogram } from '@opentelemetry/sdk-metrics'
import { installDeltaMetrics } from './fixtures/otel.js'
import { gate, meshFor, serve, Teardown, until, within } from './fixtures/server-harness.js'
import { Cleanup, call, endpointOf, startMesh } from './fixtures/client-helpers.js'

const reader = installDeltaMetrics()

describe('admission metrics and load report', () => {
  const t = new Teardown()
  const cleanup = new Cleanup()
  afterEach(async () => {
    await cleanup.run()
    await t.run()
  })

  it('counts each refusal by reason and each queue wait by outcome, matching inspect()', async () => {
    const mesh = await meshFor(t, { service: 'orders', admission: { concurrency: { limit: 1, queue: 1, queueTimeout: '50ms' }, rateLimit: { perCaller: { rps: 0.01, burst: 4 }, callerKey: (c) => c.headers['x-tenant'] as string | undefined } } })
    const release = gate()
    const srv = await serve('node:http', mesh, [{ method: 'GET', path: '/hold', handler: async () => (await release.promise, { body: {} }) }])
    t.add(() => srv.close())
    t.add(() => release.open())
    const agent = new Agent({ connections: 8 })
    t.add(() => agent.destroy())
    const get = async (headers: Record<string, string> = {}) => {
      const r = await request(`${srv.origin}/hold`, { dispatcher: agent, headers })
      await r.body.dump()
      return r.statusCode
    }
    const running = get()
    await until(() => mesh.inspect().inbound.admission.inflight === 1, 5000, 'one request to run')
    const timedOut = get() // queued, then out after 50ms
    await until(() => mesh.inspect().inbound.admission.queued === 1, 5000, 'one request to queue')
    expect(await get()).toBe(503) // queue full
    expect(await timedOut).toBe(503)
    // The tenant's four tokens pass the rate limit (each then waits out the queue: 503), the fifth is 429.
    const tenant: number[] = []
    for (let i = 0; i < 5; i++) tenant.push(await get({ 'x-tenant': 'acme' }))
    expect(tenant).toEqual([503, 503, 503, 503, 429])
    release.open()
    expect(await within(running, 5000, 'the running request')).toBe(200)

    const { resourceMetrics } = await reader.collect()
    const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
    const rejected = metrics.find((m) => m.descriptor.name === 'meshlet.admission.rejected')
    const byReason = Object.fromEntries((rejected?.dataPoints ?? []).map((p) => [p.attributes['meshlet.rejection.reason'], p.value]))
    expect(byReason).toEqual(mesh.inspect().inbound.admission.rejected)
    expect(byReason).toEqual({ concurrency: 1, queue_timeout: 5, rate_limit_caller: 1 })
    const waits = metrics.find((m) => m.descriptor.name === 'meshlet.admission.queue.duration')
    expect(waits?.descriptor.unit).toBe('s')
    const byOutcome = Object.fromEntries((waits?.dataPoints ?? []).map((p) => [p.attributes['meshlet.admission.outcome'], (p.value as Histogram).count]))
    expect(byOutcome).toEqual({ queue_timeout: 5 })
  })

  it('a saturated server reports load 1.00 with its queue, and the client balancer records it', async () => {
    const mesh = await meshFor(t, { service: 'orders', admission: { concurrency: { limit: 1, queue: 4, queueTimeout: '10s' } } })
    const release = gate()
    const srv = await serve('node:http', mesh, [{ method: 'GET', path: '/hold', handler: async () => (await release.promise, { body: {} }) }])
    t.add(() => srv.close())
    t.add(() => release.open())
    const { agent, mesh: client } = await startMesh(cleanup, { orders: { endpoints: [srv.origin] } })
    const calls = [call(agent, 'http://orders/hold'), call(agent, 'http://orders/hold')]
    await until(() => mesh.inspect().inbound.admission.queued === 1, 5000, 'the second call to queue')
    release.open()
    const replies = await within(Promise.all(calls), 5000, 'both calls')
    expect(replies.map((r) => r.status)).toEqual([200, 200])
    // The queued call started with one running (itself) at a limit of one: full.
    expect(replies.map((r) => r.headers['meshlet-load'])).toContain('1.00; inflight=1; queue=0')
    expect(endpointOf(client, 'orders', srv.origin).reportedLoad).toBe(1)
  })
})
