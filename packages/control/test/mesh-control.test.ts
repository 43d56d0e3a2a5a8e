/**
 * The core's control client against a real control endpoint on loopback: services register and
 * find each other through it, policy applies live, leases expire, and the data plane keeps routing
 * from memory and from its disk snapshot while the endpoint is away.
 */
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { parse } from 'yaml'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ControlClient, createMesh, type Mesh, type MeshOptions } from '@meshlet/core'
import { createMeshServer, meshAgent, type MeshAgent } from '@meshlet/http'
import { ADMIN, JOIN, policy, removeTempDirs, restartBehindHistory, runCli, startTestControl, tempDir } from './control-harness.js'

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  await removeTempDirs()
})

async function mesh(options: MeshOptions): Promise<Mesh> {
  const m = await createMesh({ shutdownSignals: false, ...options })
  closers.push(() => m.close())
  return m
}

/** A payments instance: a meshed node:http server that registers itself once listening. */
async function payments(control: string, name: string): Promise<{ mesh: Mesh; port: number }> {
  const m = await mesh({ service: 'payments', control, token: JOIN, drain: { delay: 0 } })
  const server = createMeshServer(m, (_req, res) => res.end(name))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  await vi.waitFor(() => expect(m.inspect().control?.lease).toBeTruthy(), { timeout: 5000 })
  return { mesh: m, port }
}

async function get(agent: MeshAgent, path = '/'): Promise<{ status: number; body: string }> {
  const r = await agent.request({ origin: 'http://payments', path, method: 'GET' })
  return { status: r.statusCode, body: await r.body.text() }
}

describe('mesh with a control endpoint', () => {
  it('finds registered instances, balances over them, and drops one that deregisters', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const a = await payments(control.url, 'a')
    await payments(control.url, 'b')
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    const agent = meshAgent(web)
    closers.push(() => agent.close())

    const bodies = new Set<string>()
    for (let i = 0; i < 20; i++) bodies.add((await get(agent)).body)
    expect(bodies).toEqual(new Set(['a', 'b']))
    expect(web.inspect().destinations.payments!.resolver).toMatch(/control endpoint/)

    await a.mesh.close() // deregisters first
    await vi.waitFor(() => expect(web.inspect().destinations.payments!.endpoints).toHaveLength(1), { timeout: 5000 })
    for (let i = 0; i < 10; i++) expect((await get(agent)).body).toBe('b')
  })

  it('applies a ServicePolicy put on the endpoint to running clients, and reverts when it is deleted', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    await payments(control.url, 'a')
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    const agent = meshAgent(web)
    closers.push(() => agent.close())
    expect((await get(agent)).status).toBe(200)
    expect(web.inspect().destinations.payments!.policy.timeout).toBe(15_000)

    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await admin.put(policy('payments', { timeout: '2s', retries: { attempts: 3, perTryTimeout: '500ms' } }) as never)
    await vi.waitFor(() => expect(web.inspect().destinations.payments!.policy.timeout).toBe(2000), { timeout: 5000 })
    expect(web.inspect().destinations.payments!.policy.retries).toMatchObject({ attempts: 3, perTryTimeout: 500 })
    expect((await get(agent)).status).toBe(200)

    await admin.delete('ServicePolicy', 'default', 'payments')
    await vi.waitFor(() => expect(web.inspect().destinations.payments!.policy.timeout).toBe(15_000), { timeout: 5000 })
  })

  it('forgets an instance whose lease runs out without a deregistration', async () => {
    const control = await startTestControl({ sweepInterval: 50 })
    closers.push(() => control.close())
    await payments(control.url, 'a')
    // An instance that registered and then died: no heartbeats, a short lease.
    const join = new ControlClient({ url: control.url, token: JOIN })
    await join.register({ service: 'payments', port: 9, address: '127.0.0.1', ttl: 300 })
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    meshAgent(web)
    expect(web.destination('payments')).toBeDefined()
    expect(web.inspect().destinations.payments!.endpoints).toHaveLength(2)
    await vi.waitFor(() => expect(web.inspect().destinations.payments!.endpoints.map((e) => e.url)).not.toContain('http://127.0.0.1:9'), { timeout: 5000 })
  })

  it('keeps routing while the endpoint is down, and a client started during the outage routes from its disk snapshot', async () => {
    const dataDir = await tempDir()
    const cacheDir = await tempDir()
    const control = await startTestControl({ dataDir })
    const backend = await payments(control.url, 'a')
    const first = await mesh({ service: 'web', control: control.url, token: JOIN, cacheDir })
    const agent = meshAgent(first)
    closers.push(() => agent.close())
    expect((await get(agent)).body).toBe('a')
    // Let the snapshot be written (debounced), then take the endpoint away.
    await vi.waitFor(async () => expect((await import('node:fs')).readdirSync(cacheDir).some((f) => f.endsWith('.snapshot.json'))).toBe(true), { timeout: 5000 })
    await control.close()

    for (let i = 0; i < 5; i++) expect((await get(agent)).body).toBe('a')
    expect(first.inspect().control?.connected).toBe(false)

    const restarted = await mesh({ service: 'web', control: control.url, token: JOIN, cacheDir })
    expect(restarted.inspect().control?.source).toBe('snapshot')
    const agent2 = meshAgent(restarted)
    closers.push(() => agent2.close())
    expect((await get(agent2)).body).toBe('a')
    expect(backend.mesh.inspect().control?.lease).toBeTruthy()
  })

  it('layers several ServicePolicies for one service in name order, as `meshlet inspect` does', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    await payments(control.url, 'a')
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    expect(web.destination('payments')).toBeDefined()
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await admin.put(policy('a-base', { service: 'payments', timeout: '2s', retries: { attempts: 1 } }) as never)
    await admin.put(policy('b-override', { service: 'payments', retries: { perTryTimeout: '300ms' } }) as never)
    await vi.waitFor(() => expect(web.inspect().destinations.payments!.policy.retries).toMatchObject({ attempts: 1, perTryTimeout: 300 }), { timeout: 5000 })
    expect(web.inspect().destinations.payments!.policy.timeout).toBe(2000)
  })

  it('reports its endpoints to the control endpoint with each heartbeat', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    await payments(control.url, 'a')
    const orders = await mesh({ service: 'orders', control: control.url, token: JOIN, heartbeatInterval: 50 })
    const agent = meshAgent(orders)
    closers.push(() => agent.close())
    const server = createMeshServer(orders, (_req, res) => res.end())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    expect((await get(agent)).body).toBe('a')
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await vi.waitFor(
      async () => {
        const [me] = (await admin.instances({ service: 'orders' })).items
        const report = me?.status.report as { destinations?: { payments?: { endpoints: { requests: number }[] } } } | undefined
        expect(report?.destinations?.payments?.endpoints[0]?.requests).toBe(1)
      },
      { timeout: 5000 },
    )
  })

  it('resyncs from the full state when its resourceVersion is older than the history the endpoint kept', async () => {
    const dataDir = await tempDir()
    const first = await startTestControl({ dataDir })
    await payments(first.url, 'a')
    const web = await mesh({ service: 'web', control: first.url, token: JOIN })
    expect(web.destination('payments')).toBeDefined()
    const rvBefore = web.inspect().control!.resourceVersion!
    // Meanwhile (another replica, say) five changes land; the restarted endpoint keeps only two.
    const control = await restartBehindHistory(first, dataDir, 'payments')
    closers.push(() => control.close())

    await vi.waitFor(() => expect(web.inspect().destinations.payments!.policy.timeout).toBe(5000), { timeout: 10_000 })
    expect(web.inspect().control).toMatchObject({ connected: true, source: 'control', resyncs: 1 })
    expect(web.inspect().control!.resourceVersion!).toBeGreaterThan(rvBefore + 4)
  })

  it('shares one lease between overlapping register() calls, and a close() during registration returns the lease', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const m = await mesh({ service: 'payments', control: control.url, token: JOIN })
    const [a, b] = await Promise.all([m.register({ port: 1111 }), m.register({ port: 1111 })])
    expect(a).toBe(b)
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    expect((await admin.instances({ service: 'payments' })).items).toHaveLength(1)

    const late = await createMesh({ service: 'orders', control: control.url, token: JOIN, shutdownSignals: false })
    const registering = late.register({ port: 2222 })
    await late.close()
    await expect(registering).rejects.toMatchObject({ code: 'MESHLET_ERR_CLOSED' })
    expect((await admin.instances({ service: 'orders' })).items).toHaveLength(0)
    expect(late.inspect().control?.lease).toBeNull()
  })

  it('cold start: a call to a service with no instance waits for the first one, or fails with NO_ENDPOINT at its deadline', async () => {
    const control = await startTestControl()
    closers.push(() => control.close())
    const admin = new ControlClient({ url: control.url, token: ADMIN })
    await admin.put(policy('payments', { timeout: '10s' }) as never) // the service is known, scaled to zero
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    const agent = meshAgent(web)
    closers.push(() => agent.close())
    expect(web.destination('payments')?.balancer.empty).toBe(true)

    const t0 = Date.now()
    const waiting = get(agent) // dispatched now, with no endpoint: it waits
    await payments(control.url, 'first')
    expect(await waiting).toEqual({ status: 200, body: 'first' })
    expect(Date.now() - t0).toBeLessThan(10_000)

    await admin.put(policy('orders', { timeout: '300ms' }) as never)
    await vi.waitFor(() => expect(web.destination('orders')).toBeDefined(), { timeout: 5000 })
    const t1 = Date.now()
    const err = await agent.request({ origin: 'http://orders', path: '/', method: 'GET' }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'MESHLET_ERR_NO_ENDPOINT' })
    expect(Date.now() - t1).toBeGreaterThanOrEqual(250)
  })

  it("accepts DESIGN.md's Route example as written, from a file (meshlet apply) and from code, and routes by it", async () => {
    const designRoute = `apiVersion: meshlet.dev/v1
kind: Route
metadata: { name: payments, namespace: default }
spec:
  service: payments
  rules:
    - match: { headers: { x-canary: "1" } }
      split: [{ revision: v2, weight: 100 }]
    - timeout: 2s
      retries: { attempts: 3, perTryTimeout: 500ms }
      split: [{ revision: v1, weight: 95 }, { revision: v2, weight: 5 }]
`
    const control = await startTestControl()
    closers.push(() => control.close())
    const file = `${await tempDir()}/route.yaml`
    await writeFile(file, designRoute)
    const applied = await runCli(['apply', '-f', file, '--control', control.url, '--token', ADMIN])
    expect(applied.code).toBe(0)
    for (const [name, rev] of [['a', 'v1'], ['b', 'v2']] as const) {
      const m = await mesh({ service: 'payments', revision: rev, control: control.url, token: JOIN, drain: { delay: 0 } })
      createMeshServer(m, (_req, res) => res.end(name)).listen(0, '127.0.0.1')
      await vi.waitFor(() => expect(m.inspect().control?.lease).toBeTruthy(), { timeout: 5000 })
    }
    const web = await mesh({ service: 'web', control: control.url, token: JOIN })
    const agent = meshAgent(web)
    closers.push(() => agent.close())
    await vi.waitFor(() => expect(web.destination('payments')?.balancer.size).toBe(2), { timeout: 5000 })
    const canary = await agent.request({ origin: 'http://payments', path: '/', method: 'GET', headers: { 'x-canary': '1' } })
    expect(await canary.body.text()).toBe('b')
    let v2 = 0
    for (let i = 0; i < 100; i++) if ((await get(agent)).body === 'b') v2++
    expect(v2).toBe(5)
    // From code: the same spec object passes mesh.applyRoutes.
    web.applyRoutes('payments', [parse(designRoute).spec])
    expect(web.inspect().lastRejectedConfig).toBeNull()
  })

  it('rejects unknown mesh options for the control client with field paths', async () => {
    await expect(createMesh({ service: 'web', control: 'ftp://x', token: '' } as never)).rejects.toThrow(/control[\s\S]*token/)
  })
})
