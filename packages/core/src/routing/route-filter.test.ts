import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Balancer } from '../balance/balancer.js'
import { address, balancerOf, callContext, settle, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv, type FakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response, type FakeProtocolOptions } from '../client/testing/fake-protocol.test-support.js'
import { recordingMetrics } from '../client/testing/recording-metrics.test-support.js'
import { routeFilter } from './route-filter.js'
import type { RouteRule } from './route-spec.js'
import { RouteTable } from './route-table.js'

let balancer: Balancer | undefined
afterEach(async () => {
  vi.useRealTimers()
  await balancer?.close()
  balancer = undefined
})

function setup(rules: RouteRule[], opts: { env?: FakeEnv; protocol?: FakeProtocolOptions } = {}) {
  const env = opts.env ?? fakeEnv()
  const { protocol, handle, log } = fakeProtocol(opts.protocol)
  const rec = recordingMetrics()
  balancer = balancerOf([address(9001, { revision: 'stable' }), address(9002, { revision: 'canary' })])
  const b = balancer
  const shadowOf = vi.fn((revision: string) => b.pickShadow(revision))
  const table = new RouteTable([{ service: 'payments', rules }], 'test')
  const filter = routeFilter(table, { requestInfo: protocol.requestInfo!, abortResponse: protocol.abortResponse!, mirror: protocol.mirror }, rec.metrics, shadowOf, env)
  return { env, handle, log, rec, shadowOf, call: stackOf([filter], protocol.endpoint) }
}

describe('routeFilter', () => {
  it('passes an unmatched request through with the context untouched', async () => {
    const { env, handle, call } = setup([{ match: { path: { prefix: '/admin' } }, split: [{ revision: 'canary', weight: 100 }], timeout: 5 }])
    const ctx = callContext(env)
    const before = { ...ctx }
    void call(fakeCall({ path: '/pay' }), ctx)
    const r = await handle.next()
    expect(r.ctx).toEqual(before)
  })

  it('sets the revision of the matching rule', async () => {
    const { env, handle, call } = setup([
      { match: { path: { prefix: '/admin' } }, split: [{ revision: 'stable', weight: 100 }] },
      { match: { method: 'POST' }, split: [{ revision: 'canary', weight: 100 }] },
    ])
    void call(fakeCall({ method: 'POST', path: '/pay' }), callContext(env))
    expect((await handle.next()).ctx.revision).toBe('canary')
  })

  it('shortens the deadline by the rule’s timeout', async () => {
    const { env, handle, call } = setup([{ timeout: 2000 }])
    void call(fakeCall(), callContext(env, { timeout: 10_000 }))
    expect((await handle.next()).seen.deadline).toBe(env.now() + 2000)
  })

  it('never lengthens a deadline that is already shorter', async () => {
    const { env, handle, call } = setup([{ timeout: 2000 }])
    void call(fakeCall(), callContext(env, { timeout: 500 }))
    expect((await handle.next()).seen.deadline).toBe(env.now() + 500)
  })

  it('gives a call without a deadline the rule’s timeout', async () => {
    const { env, handle, call } = setup([{ timeout: 2000 }])
    void call(fakeCall(), callContext(env, { timeout: Infinity }))
    expect((await handle.next()).seen.deadline).toBe(env.now() + 2000)
  })

  it('sets the rule’s retries and per-try timeout on the context', async () => {
    const { env, handle, call } = setup([{ retries: { attempts: 5, perTryTimeout: 300 } }])
    void call(fakeCall(), callContext(env))
    const { ctx } = await handle.next()
    expect(ctx.retryAttempts).toBe(5)
    expect(ctx.perTryTimeout).toBe(300)
  })

  describe('mirror', () => {
    const rules: RouteRule[] = [{ mirror: { revision: 'canary', percent: 50 } }]

    it('picks a shadow of the mirror revision when the draw falls under the percent, and counts it', async () => {
      const { env, handle, rec, shadowOf, call } = setup(rules, { env: fakeEnv({ random: [0.49] }) })
      void call(fakeCall(), callContext(env))
      const { ctx } = await handle.next()
      expect(shadowOf).toHaveBeenCalledWith('canary')
      expect(ctx.mirror?.address.revision).toBe('canary')
      expect(rec.sum('meshlet.requests.mirrored', { 'meshlet.destination': 'payments', 'meshlet.revision': 'canary' })).toBe(1)
    })

    it('does not mirror when the draw is at or over the percent', async () => {
      const { env, handle, rec, shadowOf, call } = setup(rules, { env: fakeEnv({ random: [0.5] }) })
      void call(fakeCall(), callContext(env))
      expect((await handle.next()).ctx.mirror).toBeUndefined()
      expect(shadowOf).not.toHaveBeenCalled()
      expect(rec.sum('meshlet.requests.mirrored')).toBe(0)
    })

    it('does not mirror, nor count, when the shadow revision has no ready endpoint (no fallback)', async () => {
      const { env, handle, rec, call } = setup([{ mirror: { revision: 'dark', percent: 100 } }], { env: fakeEnv({ random: [0] }) })
      void call(fakeCall(), callContext(env))
      expect((await handle.next()).ctx.mirror).toBeUndefined()
      expect(rec.sum('meshlet.requests.mirrored')).toBe(0)
    })

    it('neither draws nor mirrors for a transport that cannot mirror', async () => {
      const { env, handle, call } = setup([{ mirror: { revision: 'canary', percent: 100 } }], { protocol: { without: ['mirror'] } })
      void call(fakeCall(), callContext(env))
      expect((await handle.next()).ctx.mirror).toBeUndefined()
      expect(env.draws).toBe(0)
    })
  })

  describe('fault injection', () => {
    it('answers an abort with the protocol’s made-up response, never reaching next, counted and published', async () => {
      const { env, handle, rec, call } = setup([{ fault: { abort: { status: 503, percent: 10 } } }], { env: fakeEnv({ random: [0.09] }) })
      const published: unknown[] = []
      const onFault = (m: unknown) => published.push(m)
      subscribe('meshlet:fault:injected', onFault)
      try {
        const res = await call(fakeCall(), callContext(env))
        expect(res).toMatchObject({ status: 503, synthetic: true })
      } finally {
        unsubscribe('meshlet:fault:injected', onFault)
      }
      expect(handle.received).toHaveLength(0)
      expect(rec.sum('meshlet.faults.injected', { 'meshlet.destination': 'payments', 'meshlet.fault': 'abort' })).toBe(1)
      expect(published).toEqual([{ service: 'payments', kind: 'abort', status: 503 }])
    })

    it('does not abort when the draw misses', async () => {
      const { env, handle, rec, call } = setup([{ fault: { abort: { status: 503, percent: 10 } } }], { env: fakeEnv({ random: [0.1] }) })
      void call(fakeCall(), callContext(env))
      await handle.next()
      expect(rec.sum('meshlet.faults.injected')).toBe(0)
    })

    it('injects only into requests that carry the fault’s header', async () => {
      const { env, handle, call } = setup([{ fault: { abort: { status: 500, percent: 100 }, header: 'x-chaos' } }], { env: fakeEnv({ random: [0] }) })
      void call(fakeCall(), callContext(env))
      await handle.next()
      expect(env.draws).toBe(0)
      await expect(call(fakeCall({ headers: { 'x-chaos': '1' } }), callContext(env))).resolves.toMatchObject({ status: 500, synthetic: true })
      expect(handle.received).toHaveLength(1)
    })

    it('waits out a delay before calling next, and counts it', async () => {
      vi.useFakeTimers()
      const { env, handle, rec, call } = setup([{ fault: { delay: { fixed: 1000, percent: 100 } } }], { env: fakeEnv({ random: [0] }) })
      const out = call(fakeCall(), callContext(env))
      await vi.advanceTimersByTimeAsync(999)
      expect(handle.received).toHaveLength(0)
      expect(rec.sum('meshlet.faults.injected', { 'meshlet.fault': 'delay' })).toBe(1)
      await vi.advanceTimersByTimeAsync(1)
      ;(await handle.next()).respond(response(200))
      await expect(out).resolves.toMatchObject({ status: 200 })
    })

    it('does not delay when the draw misses', async () => {
      const { env, handle, call } = setup([{ fault: { delay: { fixed: 60_000, percent: 30 } } }], { env: fakeEnv({ random: [0.3] }) })
      void call(fakeCall(), callContext(env))
      await settle()
      expect(handle.received).toHaveLength(1)
    })
  })
})
