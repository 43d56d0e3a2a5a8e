/** The ring-hash balancer through the agent: a header's value keeps requests on one endpoint (cache affinity). */
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, call, startBackend, startMesh } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

describe('ring-hash balancer', () => {
  it('sends every request with the same x-user to the same endpoint, and different users over all endpoints', async () => {
    const backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend(cleanup, (req, res) => res.end(name))))
    const { agent } = await startMesh(cleanup, { carts: { endpoints: backends.map((b) => b.url), balancer: { type: 'ring-hash', hashHeader: 'x-user' } } })
    const owner = new Map<string, string>()
    for (let u = 0; u < 60; u++) {
      for (let i = 0; i < 3; i++) {
        const body = (await call(agent, 'http://carts/cart', { headers: { 'x-user': `u${u}` } })).body
        if (owner.has(`u${u}`)) expect(body).toBe(owner.get(`u${u}`))
        owner.set(`u${u}`, body)
      }
    }
    expect(new Set(owner.values())).toEqual(new Set(['a', 'b', 'c']))
  })
})
