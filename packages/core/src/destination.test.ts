import { afterEach, describe, expect, it } from 'vitest'
import { address, BREAKER, policy, RETRIES, testDestination, type TestDestinationOptions } from './client/testing/call-fixtures.test-support.js'
import { fakeEnv, T0 } from './client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response } from './client/testing/fake-protocol.test-support.js'
import { callScope } from './deadline/call-scope.js'
import type { Destination } from './destination.js'
import type { Resolver, ResolverListener } from './discovery/resolver.js'
import { RouteTable } from './routing/route-table.js'

const open: Destination[] = []
afterEach(async () => {
  for (const d of open.splice(0)) await d.close()
})

function destination(opts: TestDestinationOptions = {}) {
  const env = fakeEnv({ fallback: 0 }) // jitter 0: backoffs are the base, doubled
  const d = testDestination({ env, ...opts })
  open.push(d)
  return { env, d }
}

const withRetries = (overrides = {}) => policy({ retries: { ...RETRIES, backoffBase: 0, backoffMax: 0, ...overrides }, breaker: BREAKER })

describe('Destination', () => {
  describe('newContext', () => {
    it('gives a call the policy’s timeout on the stack’s clock', () => {
      const { d } = destination({ policy: policy({ timeout: 3000 }) })
      const ctx = d.newContext(true)
      expect(ctx).toMatchObject({ service: 'payments', deadline: T0 + 3000, signal: undefined, idempotent: true, attempt: 1, endpoint: undefined })
    })

    it('sets no deadline when the policy has no timeout', () => {
      const { d } = destination({ policy: policy({ timeout: Infinity }) })
      expect(d.newContext(false).deadline).toBe(Infinity)
    })

    it('takes the inbound scope’s deadline when it is earlier, the policy’s when the scope’s is later', () => {
      const { d } = destination({ policy: policy({ timeout: 3000 }) })
      expect(callScope.run({ deadline: T0 + 1000, signal: undefined }, () => d.newContext(true).deadline)).toBe(T0 + 1000)
      expect(callScope.run({ deadline: T0 + 9000, signal: undefined }, () => d.newContext(true).deadline)).toBe(T0 + 3000)
      expect(callScope.run({ deadline: T0 + 9000, signal: undefined }, () => destination({ policy: policy({ timeout: Infinity }) }).d.newContext(true).deadline)).toBe(T0 + 9000)
    })

    it('follows the scope’s cancellation when the caller passes no signal', () => {
      const { d } = destination()
      const inbound = new AbortController()
      const ctx = callScope.run({ deadline: Infinity, signal: inbound.signal }, () => d.newContext(true))
      expect(ctx.signal).toBe(inbound.signal)
    })

    it('is cancelled by either the caller’s signal or the scope’s when both are given', () => {
      const { d } = destination()
      for (const which of ['caller', 'scope'] as const) {
        const caller = new AbortController()
        const inbound = new AbortController()
        const ctx = callScope.run({ deadline: Infinity, signal: inbound.signal }, () => d.newContext(true, caller.signal))
        expect(ctx.signal?.aborted).toBe(false)
        ;(which === 'caller' ? caller : inbound).abort()
        expect(ctx.signal?.aborted).toBe(true)
      }
    })

    it('keeps the caller’s signal outside any scope', () => {
      const { d } = destination()
      const caller = new AbortController()
      expect(d.newContext(true, caller.signal).signal).toBe(caller.signal)
    })

    it('carries the policy’s per-try timeout, none without retries', () => {
      expect(destination({ policy: withRetries({ perTryTimeout: 250 }) }).d.newContext(true).perTryTimeout).toBe(250)
      expect(destination({ policy: policy({ retries: false }) }).d.newContext(true).perTryTimeout).toBe(Infinity)
    })
  })

  describe('updatePolicy', () => {
    it('keeps endpoint state and rebuilds the stack, so new calls follow the new policy', async () => {
      const { d } = destination({ policy: policy({ retries: false, breaker: false }) })
      await d.ready
      const { protocol, handle } = fakeProtocol()
      handle.answerWith(() => response(503))
      const before = d.stack(protocol)
      await before(fakeCall(), d.newContext(true))
      expect(handle.received).toHaveLength(1)
      const balancer = d.balancer
      const requests = () => d.snapshot().endpoints.reduce((n, e) => n + e.requests, 0)
      expect(requests()).toBe(1)

      d.updatePolicy(withRetries())
      expect(d.balancer).toBe(balancer)
      expect(requests()).toBe(1)
      const after = d.stack(protocol)
      expect(after).not.toBe(before)
      await after(fakeCall(), d.newContext(true))
      expect(handle.received).toHaveLength(1 + 3) // now retried twice
    })

    it('keeps the retry budget and breaker when their settings did not change', () => {
      const { d } = destination({ policy: withRetries() })
      const budget = d.budget
      const breaker = d.breaker
      d.updatePolicy({ ...withRetries(), timeout: 1234 })
      expect(d.budget).toBe(budget)
      expect(d.breaker).toBe(breaker)
    })

    it('starts a new budget when the retry settings change', () => {
      const { d } = destination({ policy: withRetries() })
      const budget = d.budget
      const breaker = d.breaker
      d.updatePolicy(withRetries({ budgetPercent: 50 }))
      expect(d.budget).not.toBe(budget)
      expect(d.breaker).toBe(breaker)
    })

    it('starts a new breaker when the breaker settings change, shutting down the old one', () => {
      const { d } = destination({ policy: withRetries() })
      const budget = d.budget
      const breaker = d.breaker!
      d.updatePolicy({ ...withRetries(), breaker: { ...BREAKER, resetTimeout: 1 } })
      expect(d.breaker).not.toBe(breaker)
      expect(breaker.isShutdown).toBe(true)
      expect(d.budget).toBe(budget)
    })

    it('drops budget and breaker when the policy turns them off', () => {
      const { d } = destination({ policy: withRetries() })
      d.updatePolicy(policy({ retries: false, breaker: false }))
      expect(d.budget).toBeUndefined()
      expect(d.breaker).toBeUndefined()
    })
  })

  it('updateRoutes: an empty table is no table; a new one applies to the next call', async () => {
    const { env, d } = destination()
    env.script(0) // the fault's draw
    await d.ready
    d.updateRoutes(new RouteTable([], 'empty'))
    expect(d.routes).toBeUndefined()
    const { protocol, handle } = fakeProtocol()
    const before = d.stack(protocol)
    d.updateRoutes(new RouteTable([{ service: 'payments', rules: [{ fault: { abort: { status: 418, percent: 100 } } }] }], 'test'))
    expect(d.stack(protocol)).not.toBe(before)
    await expect(d.stack(protocol)(fakeCall(), d.newContext(true))).resolves.toMatchObject({ status: 418, synthetic: true })
    expect(handle.received).toHaveLength(0)
  })

  describe('snapshot', () => {
    it('shows the resolver, policy, endpoints, budget and (once used) breaker', async () => {
      const p = withRetries()
      const { d } = destination({ policy: p, endpoints: [address(9001), address(9002)] })
      await d.ready
      const s0 = d.snapshot()
      expect(s0.resolver).toBe('static list (http://10.0.0.1:9001, http://10.0.0.1:9002)')
      expect(s0.policy).toBe(p)
      expect(s0.endpoints.map((e) => e.url)).toEqual(['http://10.0.0.1:9001', 'http://10.0.0.1:9002'])
      expect(s0.retryBudget).toEqual({ balance: 20 }) // 10/s: two 1 s buckets of reserve may go at once (100 over the 10 s window)
      expect(s0.lastDiscoveryError).toBeNull()

      const { protocol, handle } = fakeProtocol()
      handle.answerWith(() => response(500))
      await d.stack(protocol)(fakeCall(), d.newContext(true))
      expect(d.snapshot().breaker).toEqual({ state: 'closed', fires: 1, failures: 1 })
    })

    it('shows null for what the policy turns off', () => {
      const s = destination({ policy: policy({ retries: false, breaker: false }) }).d.snapshot()
      expect(s.breaker).toBeNull()
      expect(s.retryBudget).toBeNull()
    })

    it('keeps the last discovery error, and the endpoints it had', async () => {
      let listener: ResolverListener | undefined
      const resolver: Resolver = {
        start: (l) => {
          listener = l
          l.onChanges([{ type: 'insert', endpoint: address(9001) }])
        },
        close: () => undefined,
        describe: () => 'scripted',
      }
      const { d } = destination({ resolver })
      await d.ready
      listener!.onError(new Error('dns timeout'))
      expect(d.snapshot()).toMatchObject({ resolver: 'scripted', lastDiscoveryError: 'dns timeout', endpoints: [{ url: 'http://10.0.0.1:9001' }] })
    })
  })

  it('is ready once the resolver delivered its first snapshot', async () => {
    let listener: ResolverListener | undefined
    const resolver: Resolver = { start: (l) => void (listener = l), close: () => undefined, describe: () => 'later' }
    const { d } = destination({ resolver })
    let ready = false
    void d.ready.then(() => (ready = true))
    await Promise.resolve()
    expect(ready).toBe(false)
    listener!.onChanges([])
    await d.ready
    expect(d.balancer.empty).toBe(true)
  })
})
