/**
 * Static stability: the control endpoint SIGKILLed under load costs no request, and once it is
 * back, a policy applied to it reaches every client.
 */
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ControlClient, createMesh, type Mesh } from '@meshlet/core'
import { createMeshServer, meshAgent, type MeshAgent } from '@meshlet/http'
import { ADMIN, JOIN, kill9, policy, removeTempDirs, spawnControl, tempDir } from './control-harness.js'

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  await removeTempDirs()
})

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

describe('control endpoint outage', () => {
  it('SIGKILL of the endpoint under load fails no request; a policy applied after it restarts reaches every client', { timeout: 60_000 }, async () => {
    const dataDir = await tempDir()
    const port = await freePort()
    let control = await spawnControl(dataDir, undefined, port)
    closers.push(() => kill9(control.child))
    const url = control.url

    for (const name of ['a', 'b']) {
      const m = await createMesh({ service: 'payments', control: url, token: JOIN, shutdownSignals: false, drain: { delay: 0 }, heartbeatInterval: 100, leaseTtl: 5000 })
      closers.push(() => m.close())
      const server = createMeshServer(m, (_req, res) => res.end(name))
      server.listen(0, '127.0.0.1')
      await vi.waitFor(() => expect(m.inspect().control?.lease).toBeTruthy(), { timeout: 5000 })
    }
    const clients: { mesh: Mesh; agent: MeshAgent }[] = []
    for (let i = 0; i < 3; i++) {
      const mesh = await createMesh({ service: `web-${i}`, control: url, token: JOIN, shutdownSignals: false })
      const agent = meshAgent(mesh)
      closers.push(() => mesh.close(), () => agent.close())
      clients.push({ mesh, agent })
    }
    for (const c of clients) expect(c.mesh.inspect().destinations).toEqual({}) // created on first use
    for (const c of clients) expect(c.mesh.destination('payments')?.balancer.size).toBe(2)

    // Closed-loop load from every client until told to stop.
    let stop = false
    let ok = 0
    const failures: unknown[] = []
    const worker = async (agent: MeshAgent) => {
      while (!stop) {
        try {
          const r = await agent.request({ origin: 'http://payments', path: '/', method: 'GET' })
          await r.body.dump()
          if (r.statusCode === 200) ok++
          else failures.push(r.statusCode)
        } catch (err) {
          failures.push(err)
        }
      }
    }
    const load = Promise.all(clients.flatMap((c) => [worker(c.agent), worker(c.agent)]))

    await vi.waitFor(() => expect(ok).toBeGreaterThan(300), { timeout: 10_000 })
    await kill9(control.child)
    await vi.waitFor(() => expect(clients.every((c) => c.mesh.inspect().control?.connected === false)).toBe(true), { timeout: 10_000 })
    const duringOutage = ok
    await vi.waitFor(() => expect(ok).toBeGreaterThan(duringOutage + 300), { timeout: 10_000 })

    control = await spawnControl(dataDir, undefined, port)
    await vi.waitFor(() => expect(clients.every((c) => c.mesh.inspect().control?.connected === true)).toBe(true), { timeout: 15_000 })
    await new ControlClient({ url, token: ADMIN }).put(policy('payments', { timeout: '3s' }) as never)
    await vi.waitFor(() => expect(clients.map((c) => c.mesh.inspect().destinations.payments!.policy.timeout)).toEqual([3000, 3000, 3000]), { timeout: 10_000 })

    stop = true
    await load
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(duringOutage + 300)
  })

  it('the README\'s `server.listen(port, () => mesh.register({ port }))` with the endpoint down neither crashes nor stays without a lease once it is up', { timeout: 30_000 }, async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const mesh = await createMesh({ service: 'payments', control: url, token: JOIN, shutdownSignals: false, drain: { delay: 0 } })
    closers.push(() => mesh.close())
    const server = createServer()
    closers.push(() => new Promise((r) => server.close(r)))
    // The promise is dropped, as in the README: a rejection here would be an unhandled one, which vitest reports.
    server.listen(0, '127.0.0.1', () => void mesh.register({ port: (server.address() as AddressInfo).port }))
    await once(server, 'listening')
    expect(mesh.inspect().control?.lease).toBeNull()
    const control = await spawnControl(await tempDir(), undefined, port)
    closers.push(() => kill9(control.child))
    await vi.waitFor(() => expect(mesh.inspect().control?.lease).toBeTruthy(), { timeout: 20_000 })
    const items = (await new ControlClient({ url, token: JOIN }).instances({ service: 'payments' })).items
    expect(items.map((i) => i.metadata.name)).toEqual([mesh.inspect().control!.lease])
  })
})
