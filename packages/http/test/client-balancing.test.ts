/**
 * Outbound balancing: the default p2c peak-EWMA balancer keeps traffic off a slow endpoint, where
 * round-robin keeps sending it its equal share.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { MeshAgent } from '@meshlet/http'
import { Cleanup, call, runLoad, spawnBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** Sends `total` GETs at `concurrency` and returns how many each backend answered. */
async function spread(agent: MeshAgent, names: string[], total: number, concurrency: number): Promise<number[]> {
  const results = await runLoad(total, concurrency, () => call(agent, 'http://payments/work'))
  expect(results.filter((r) => r.status === 'rejected')).toEqual([])
  const bodies = results.map((r) => (r.status === 'fulfilled' && r.value.status === 200 ? r.value.body : 'failed'))
  return names.map((n) => bodies.filter((b) => b === n).length)
}

describe('client balancing', () => {
  it('p2c peak-EWMA (the default) sends a 50 ms-slower endpoint a small share; round-robin sends it a third', async () => {
    const [fast1, fast2, slow] = await Promise.all([spawnBackend(cleanup, ['--name=fast1']), spawnBackend(cleanup, ['--name=fast2']), spawnBackend(cleanup, ['--name=slow', '--delay=50'])])
    const backends = [fast1!, fast2!, slow!]
    const endpoints = backends.map((b) => b.url)
    const names = ['fast1', 'fast2', 'slow']
    const policy = { endpoints, retries: false, breaker: false, outlier: false } as const
    const { agent: rrAgent } = await startMesh(cleanup, { payments: { ...policy, balancer: 'round-robin' } })
    const total = 300
    // Round-robin first: it also warms up the process (JIT, lazy loads), whose one-off costs the
    // peak-EWMA mesh below would otherwise record as endpoint latency (it decays over 10 s).
    const rr = await spread(rrAgent, names, total, 8)

    const { agent: ewmaAgent, mesh } = await startMesh(cleanup, { payments: policy })
    // Warm-up: every endpoint gets a latency sample (an unmeasured endpoint costs nothing to pick).
    await spread(ewmaAgent, names, 40, 8)
    expect(mesh.inspect().destinations.payments!.endpoints.every((e) => e.requests > 0)).toBe(true)
    const ewma = await spread(ewmaAgent, names, total, 8)

    const ewmaSlowShare = ewma[2]! / total
    const rrSlowShare = rr[2]! / total
    expect(ewma.reduce((a, b) => a + b, 0)).toBe(total)
    expect(ewmaSlowShare).toBeLessThan(0.1)
    expect(rrSlowShare).toBeGreaterThan(0.28)
    expect(rrSlowShare).toBeLessThan(0.39)
    // The balancer saw why: its latency estimate for the slow endpoint includes the 50 ms delay.
    const slowSnap = mesh.inspect().destinations.payments!.endpoints.find((e) => e.url === slow!.url)!
    expect(slowSnap.latencyMs).toBeGreaterThanOrEqual(45)
  })
})
