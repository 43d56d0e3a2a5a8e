import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type CircuitBreaker from 'opossum'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BREAKER, callContext, RETRIES, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, REJECTED, response, transportError, type FakeResponse } from '../client/testing/fake-protocol.test-support.js'
import { recordingMetrics } from '../client/testing/recording-metrics.test-support.js'
import type { BreakerPolicy } from '../config/mesh-options.js'
import { ErrorCodes, isMeshletError, type MeshletError } from '../errors.js'
import { breakerFilter, newBreaker } from './breaker-filter.js'
import { RetryBudget } from './retry-budget.js'
import { retryFilter } from './retry-filter.js'

const breakers: CircuitBreaker[] = []
afterEach(() => {
  for (const b of breakers.splice(0)) b.shutdown()
  vi.useRealTimers()
})

function setup(policy: Partial<BreakerPolicy> = {}) {
  const env = fakeEnv({ fallback: 0 }) // jitter 0: backoffs are the base, doubled
  const { protocol, handle } = fakeProtocol()
  const rec = recordingMetrics()
  const breaker = newBreaker('payments', { ...BREAKER, ...policy }, rec.metrics)
  breakers.push(breaker)
  const call = stackOf([breakerFilter(breaker, protocol)], protocol.endpoint)
  return { env, protocol, handle, rec, breaker, call, send: (req = fakeCall()) => call(req, callContext(env)) }
}

describe('breakerFilter', () => {
  it('counts a failed response against the breaker and still hands it back as a response', async () => {
    const { handle, breaker, send } = setup()
    const res = response(500)
    handle.answerWith(() => res)
    await expect(send()).resolves.toBe(res)
    expect(breaker.stats).toMatchObject({ fires: 1, failures: 1 })
  })

  it('counts a retryable failed response (503) as a failure too', async () => {
    const { handle, breaker, send } = setup()
    handle.answerWith(() => response(503))
    await expect(send()).resolves.toMatchObject({ status: 503 })
    expect(breaker.stats.failures).toBe(1)
  })

  it('counts a success as a success', async () => {
    const { handle, breaker, send } = setup()
    handle.answerWith(() => response(404))
    await send()
    expect(breaker.stats).toMatchObject({ fires: 1, failures: 0, successes: 1 })
  })

  it('never counts a refusal before processing (meshlet-rejected), however many', async () => {
    const { handle, breaker, send } = setup()
    handle.answerWith(() => response(503, { [REJECTED]: '1' }))
    for (let i = 0; i < 10; i++) await expect(send()).resolves.toMatchObject({ status: 503 })
    expect(breaker.stats.failures).toBe(0)
    expect(breaker.opened).toBe(false)
  })

  it('never counts an error that says nothing of the endpoint (Ignorable), and rethrows it as it is', async () => {
    const { handle, breaker, send } = setup()
    const reason = new Error('client went away')
    handle.answerWith((req) => {
      req.aborted = true
      throw reason
    })
    for (let i = 0; i < 10; i++) await expect(send()).rejects.toBe(reason)
    expect(breaker.stats.failures).toBe(0)
    expect(breaker.opened).toBe(false)
  })

  it('counts a transport error and rethrows it as it is', async () => {
    const { handle, breaker, send } = setup()
    const err = transportError('ECONNRESET')
    handle.answerWith(() => {
      throw err
    })
    await expect(send()).rejects.toBe(err)
    expect(breaker.stats.failures).toBe(1)
  })

  it('once open, fails fast with MESHLET_ERR_BREAKER_OPEN without calling next; the transition is counted and published', async () => {
    const { env, handle, rec, breaker, call } = setup({ volumeThreshold: 4, errorThreshold: 50, resetTimeout: 5000 })
    const states: unknown[] = []
    const onState = (m: unknown) => states.push(m)
    subscribe('meshlet:breaker:state', onState)
    try {
      handle.answerWith(() => response(500))
      for (let i = 0; i < 4; i++) await call(fakeCall(), callContext(env))
    } finally {
      unsubscribe('meshlet:breaker:state', onState)
    }
    expect(breaker.opened).toBe(true)
    expect(states).toEqual([{ service: 'payments', state: 'open' }])
    expect(rec.sum('meshlet.breaker.state', { 'meshlet.destination': 'payments', 'meshlet.breaker.state': 'open' })).toBe(1)

    const ctx = callContext(env)
    ctx.attempt = 3
    const err = (await call(fakeCall(), ctx).catch((e: unknown) => e)) as MeshletError
    expect(handle.received).toHaveLength(4)
    expect(isMeshletError(err, ErrorCodes.BREAKER_OPEN)).toBe(true)
    expect(err.retryable).toBe(false)
    expect(err.message).toMatch(/Circuit breaker for "payments" is open .* up to 5000ms.* Attempt 3\./)
    expect(err.details).toMatchObject({ service: 'payments', state: 'open', stats: { failures: 4 } })
  })

  it('lets one probe through after the reset timeout; its success closes the breaker', async () => {
    vi.useFakeTimers()
    const { handle, breaker, send } = setup({ volumeThreshold: 2, resetTimeout: 1000 })
    let status = 500
    handle.answerWith(() => response(status))
    await send()
    await send()
    expect(breaker.opened).toBe(true)
    await vi.advanceTimersByTimeAsync(1000)
    expect(breaker.halfOpen).toBe(true)
    status = 200
    await expect(send()).resolves.toMatchObject({ status: 200 })
    expect(breaker.closed).toBe(true)
    expect(handle.received).toHaveLength(3)
  })

  it('counts attempts, not calls, under the retry role', async () => {
    const { env, protocol, handle, breaker } = setup()
    const retry = retryFilter(protocol, { ...RETRIES, backoffBase: 0, backoffMax: 0 }, new RetryBudget(20, 10, 10_000), recordingMetrics().metrics, env)
    const call = stackOf([retry, breakerFilter(breaker, protocol)], protocol.endpoint)
    handle.answerWith((_r, _c, n): FakeResponse => response(n < 3 ? 503 : 200))
    await expect(call(fakeCall(), callContext(env))).resolves.toMatchObject({ status: 200 })
    expect(breaker.stats).toMatchObject({ fires: 3, failures: 2, successes: 1 })
  })
})
