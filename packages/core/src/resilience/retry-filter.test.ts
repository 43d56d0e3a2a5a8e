import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Balancer } from '../balance/balancer.js'
import { pickFilter } from '../balance/pick-filter.js'
import type { CallContext } from '../client/call-context.js'
import { address, balancerOf, callContext, RETRIES, settle, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv, type FakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, REJECTED, response, transportError, type FakeCall } from '../client/testing/fake-protocol.test-support.js'
import { recordingMetrics } from '../client/testing/recording-metrics.test-support.js'
import type { RetryPolicy } from '../config/mesh-options.js'
import { ErrorCodes, isMeshletError, MeshletError } from '../errors.js'
import { RetryBudget } from './retry-budget.js'
import { retryFilter } from './retry-filter.js'

let balancer: Balancer | undefined
afterEach(async () => {
  vi.useRealTimers()
  vi.restoreAllMocks()
  await balancer?.close()
  balancer = undefined
})

interface Setup {
  env?: FakeEnv
  policy?: Partial<RetryPolicy>
  budget?: RetryBudget
  /** Put a real pick (two endpoints) under the retry, so errors name an endpoint. */
  pick?: boolean
}

function setup(opts: Setup = {}) {
  const env = opts.env ?? fakeEnv({ fallback: 0 })
  const { protocol, handle, log } = fakeProtocol()
  const rec = recordingMetrics()
  // No backoff unless a test asks: the loop then needs no timers.
  const policy: RetryPolicy = { ...RETRIES, backoffBase: 0, backoffMax: 0, ...opts.policy }
  const budget = opts.budget ?? new RetryBudget(20, 10, 10_000)
  const filters = [retryFilter(protocol, policy, budget, rec.metrics, env)]
  if (opts.pick === true) {
    balancer = balancerOf([address(9001), address(9002)])
    filters.push(pickFilter(balancer, protocol))
  }
  const stack = stackOf(filters, protocol.endpoint)
  const retries = (outcome: string) => rec.sum('meshlet.retries', { 'meshlet.destination': 'payments', 'meshlet.retry.outcome': outcome })
  return { env, handle, log, budget, policy, retries, call: (req: FakeCall, ctx: CallContext) => stack(req, ctx) }
}

const failure = (err: unknown) => err as MeshletError

describe('retryFilter', () => {
  it('lets a success through on the first attempt: one deposit, no withdrawal, nothing counted', async () => {
    const budget = new RetryBudget(100, 0, 10_000)
    const { env, handle, retries, call } = setup({ budget })
    const out = call(fakeCall(), callContext(env))
    const res = response(200)
    ;(await handle.next()).respond(res)
    await expect(out).resolves.toBe(res)
    expect(handle.received).toHaveLength(1)
    expect(budget.balance()).toBe(1)
    expect(retries('sent')).toBe(0)
  })

  it('retries a retryable response: the held one is discarded, the retry is attempt 2, the budget pays one', async () => {
    const budget = new RetryBudget(100, 0, 10_000)
    const { env, handle, log, retries, call } = setup({ budget })
    const ctx = callContext(env)
    const out = call(fakeCall(), ctx)
    const first = response(503)
    ;(await handle.next()).respond(first)
    const r2 = await handle.next()
    expect(r2.seen.attempt).toBe(2)
    expect(log.discarded).toEqual([first])
    const ok = response(200)
    r2.respond(ok)
    await expect(out).resolves.toBe(ok)
    expect(budget.balance()).toBe(0)
    expect(retries('sent')).toBe(1)
  })

  it('publishes each retry on meshlet:retry with the previous endpoint', async () => {
    const { env, handle, call } = setup({ pick: true })
    const seen: unknown[] = []
    const onRetry = (m: unknown) => seen.push(m)
    subscribe('meshlet:retry', onRetry)
    try {
      handle.answerWith((_r, _c, n) => response(n === 1 ? 503 : 200))
      await call(fakeCall(), callContext(env))
    } finally {
      unsubscribe('meshlet:retry', onRetry)
    }
    expect(seen).toEqual([{ service: 'payments', attempt: 2, previousEndpoint: handle.received[0]!.seen.endpoint!.url }])
  })

  it('retries a retryable error (connect refused) and returns the retry’s response', async () => {
    const { env, handle, call } = setup()
    const out = call(fakeCall(), callContext(env))
    ;(await handle.next()).fail(transportError('ECONNREFUSED'))
    ;(await handle.next()).respond(response(200))
    await expect(out).resolves.toMatchObject({ status: 200 })
  })

  it('hands back a failed response it does not retry (500), untouched', async () => {
    const { env, handle, log, call } = setup()
    const out = call(fakeCall(), callContext(env))
    const res = response(500)
    ;(await handle.next()).respond(res)
    await expect(out).resolves.toBe(res)
    expect(handle.received).toHaveLength(1)
    expect(log.discarded).toHaveLength(0)
  })

  it('does not retry a 503 of a non-idempotent call, but does retry one the server refused before processing', async () => {
    const { env, handle, call } = setup()
    const plain = call(fakeCall({ method: 'POST' }), callContext(env, { idempotent: false }))
    ;(await handle.next()).respond(response(503))
    await expect(plain).resolves.toMatchObject({ status: 503 })
    expect(handle.received).toHaveLength(1)

    const refused = call(fakeCall({ method: 'POST' }), callContext(env, { idempotent: false }))
    ;(await handle.next()).respond(response(503, { [REJECTED]: '1' }))
    ;(await handle.next()).respond(response(201))
    await expect(refused).resolves.toMatchObject({ status: 201 })
  })

  describe('attempts', () => {
    it('stops after the policy’s retries, handing back the last response undiscarded', async () => {
      const { env, handle, log, retries, call } = setup({ policy: { attempts: 2 } })
      handle.answerWith(() => response(503))
      const res = await call(fakeCall(), callContext(env))
      expect(handle.received).toHaveLength(3)
      expect(res.discarded).toBe(false)
      expect(log.discarded).toHaveLength(2)
      expect(handle.received.map((r) => r.seen.attempt)).toEqual([1, 2, 3])
      expect(retries('sent')).toBe(2)
    })

    it('counts the stop for attempts in meshlet.retries', async () => {
      const { env, handle, retries, call } = setup({ policy: { attempts: 2 } })
      handle.answerWith(() => response(503))
      await call(fakeCall(), callContext(env))
      expect(retries('attempts')).toBe(1)
    })

    it.each([
      [0, 1],
      [1, 2],
      [4, 5],
    ])('a route’s retryAttempts %i overrides the policy’s 2: %i attempts', async (routeAttempts, expected) => {
      const { env, handle, call } = setup({ policy: { attempts: 2 }, budget: new RetryBudget(20, 100, 10_000) })
      handle.answerWith(() => response(503))
      const ctx = callContext(env)
      ctx.retryAttempts = routeAttempts
      await call(fakeCall(), ctx)
      expect(handle.received).toHaveLength(expected)
    })

    it('with errors only, gives up with MESHLET_ERR_UPSTREAM saying how many attempts', async () => {
      const { env, handle, call } = setup({ policy: { attempts: 1 } })
      handle.answerWith(() => {
        throw transportError('ECONNREFUSED')
      })
      const err = failure(await call(fakeCall(), callContext(env)).catch((e: unknown) => e))
      expect(isMeshletError(err, ErrorCodes.UPSTREAM)).toBe(true)
      expect(err.message).toMatch(/on attempt 2: ECONNREFUSED .*Gave up after 2 attempt\(s\) \(attempts\)/)
      expect(err.details).toMatchObject({ attempt: 2, stoppedBy: 'attempts' })
      expect((err.cause as { code: string }).code).toBe('ECONNREFUSED')
    })
  })

  describe('deadline', () => {
    it('does not retry when no more than the backoff base is left', async () => {
      const { env, handle, retries, call } = setup({ policy: { backoffBase: 25, backoffMax: 25 } })
      const out = call(fakeCall(), callContext(env, { timeout: 25 }))
      ;(await handle.next()).respond(response(503))
      await expect(out).resolves.toMatchObject({ status: 503, discarded: false })
      expect(handle.received).toHaveLength(1)
      expect(retries('deadline')).toBe(1)
    })

    /** Two attempts that fail with connect errors; the clock reaches the deadline during the second. */
    async function deadlineDuringRetry() {
      const { env, handle, retries, call } = setup()
      const out = call(fakeCall(), callContext(env, { timeout: 1000 }))
      ;(await handle.next()).fail(transportError('ECONNREFUSED'))
      const r2 = await handle.next()
      env.advance(1000)
      r2.fail(transportError('ECONNREFUSED'))
      return { handle, retries, err: failure(await out.catch((e: unknown) => e)) }
    }

    it('stops the loop once the clock reaches the deadline between attempts', async () => {
      const { handle, retries, err } = await deadlineDuringRetry()
      expect(handle.received).toHaveLength(2)
      expect(retries('deadline')).toBe(1)
      expect(isMeshletError(err, ErrorCodes.UPSTREAM)).toBe(true)
      expect(err.message).toMatch(/on attempt 2: ECONNREFUSED .*Deadline left: 0ms/)
    })

    it('says a loop stopped by the deadline stopped for the deadline', async () => {
      const { err } = await deadlineDuringRetry()
      expect(err.details).toMatchObject({ stoppedBy: 'deadline' })
    })

    it('a first failure with no time left says it stopped for the deadline', async () => {
      const { env, handle, call } = setup()
      const out = call(fakeCall(), callContext(env, { timeout: 1000 }))
      const r = await handle.next()
      env.advance(1000)
      r.fail(transportError('ECONNREFUSED'))
      const err = failure(await out.catch((e: unknown) => e))
      expect(err.message).toMatch(/Gave up after 1 attempt\(s\) \(deadline\)\. Deadline left: 0ms/)
      expect(err.details).toMatchObject({ stoppedBy: 'deadline' })
    })

    it('waits out a Retry-After that ends before the deadline, then retries', async () => {
      vi.useFakeTimers()
      const { env, handle, call } = setup({ env: fakeEnv({ now: 'timers', fallback: 0 }) })
      const out = call(fakeCall(), callContext(env, { timeout: 5000 }))
      ;(await handle.next()).respond(response(503, { 'retry-after': '2' }))
      await vi.advanceTimersByTimeAsync(1999)
      expect(handle.received).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(1)
      ;(await handle.next()).respond(response(200))
      await expect(out).resolves.toMatchObject({ status: 200 })
    })

    it('hands back, undiscarded and at once, a response whose Retry-After outlasts the deadline', async () => {
      const { env, handle, retries, call } = setup()
      const out = call(fakeCall(), callContext(env, { timeout: 3000 }))
      const res = response(503, { 'retry-after': '3' })
      ;(await handle.next()).respond(res)
      await expect(out).resolves.toBe(res)
      expect(res.discarded).toBe(false)
      expect(handle.received).toHaveLength(1)
      expect(retries('deadline')).toBe(1)
    })

    it('sends the first retry at once, then backs off the base, doubled after (jitter 0)', async () => {
      vi.useFakeTimers()
      const { env, handle, call } = setup({ env: fakeEnv({ now: 'timers', fallback: 0 }), policy: { attempts: 3, backoffBase: 100, backoffMax: 400 } })
      const out = call(fakeCall(), callContext(env, { timeout: 10_000 }))
      ;(await handle.next()).respond(response(503))
      ;(await handle.next()).respond(response(503)) // the first retry went at once
      await vi.advanceTimersByTimeAsync(99)
      expect(handle.received).toHaveLength(2)
      await vi.advanceTimersByTimeAsync(1)
      ;(await handle.next()).respond(response(503))
      await vi.advanceTimersByTimeAsync(199)
      expect(handle.received).toHaveLength(3)
      await vi.advanceTimersByTimeAsync(1)
      ;(await handle.next()).respond(response(200))
      await expect(out).resolves.toMatchObject({ status: 200 })
    })

    it('never sends a retry at or past the deadline when the backoff outlasts the time left', async () => {
      vi.useFakeTimers()
      // The first retry goes at once; the jitter, from the stack's random source, makes the next backoff round(1.6 × 25) = 40 ms.
      const { env, handle, retries, call } = setup({ env: fakeEnv({ now: 'timers', fallback: 0.6 }), policy: { backoffBase: 25, backoffMax: 250 } })
      const out = call(fakeCall(), callContext(env, { timeout: 1000 }))
      ;(await handle.next()).respond(response(503))
      const r2 = await handle.next()
      await vi.advanceTimersByTimeAsync(970) // 30 ms left: more than the 25 ms base, less than the 40 ms backoff
      r2.respond(response(503))
      await expect(out).resolves.toMatchObject({ status: 503, discarded: false })
      await vi.advanceTimersByTimeAsync(200)
      expect(handle.received).toHaveLength(2)
      expect(retries('deadline')).toBe(1)
    })
  })

  describe('what it never retries', () => {
    it('a body that cannot be sent again: the response comes back, no budget is spent', async () => {
      const budget = new RetryBudget(100, 0, 10_000)
      const { env, handle, retries, call } = setup({ budget })
      const out = call(fakeCall({ replayable: false }), callContext(env))
      ;(await handle.next()).respond(response(503))
      await expect(out).resolves.toMatchObject({ status: 503, discarded: false })
      expect(handle.received).toHaveLength(1)
      expect(budget.balance()).toBe(1)
      expect(retries('body_not_replayable')).toBe(1)
    })

    it('a body that cannot be sent again, on an error: says so', async () => {
      const { env, handle, call } = setup()
      const out = call(fakeCall({ replayable: false }), callContext(env))
      ;(await handle.next()).fail(transportError('ECONNREFUSED'))
      const err = failure(await out.catch((e: unknown) => e))
      expect(isMeshletError(err, ErrorCodes.UPSTREAM)).toBe(true)
      expect(err.message).toMatch(/Not retried: the request body was a stream/)
      expect(err.details).toMatchObject({ stoppedBy: 'body_not_replayable' })
    })

    it('after the caller cancelled', async () => {
      const { env, handle, retries, call } = setup()
      const ac = new AbortController()
      const out = call(fakeCall(), callContext(env, { signal: ac.signal }))
      const r = await handle.next()
      ac.abort()
      r.respond(response(503))
      await expect(out).resolves.toMatchObject({ status: 503 })
      expect(handle.received).toHaveLength(1)
      expect(retries('cancelled')).toBe(1)
    })

    it('says a call cancelled during the backoff was cancelled, not out of attempts', async () => {
      vi.useFakeTimers()
      const { env, handle, retries, call } = setup({ env: fakeEnv({ now: 'timers', fallback: 0 }), policy: { backoffBase: 100, backoffMax: 100 } })
      const ac = new AbortController()
      const out = call(fakeCall(), callContext(env, { signal: ac.signal })).catch((e: unknown) => e)
      ;(await handle.next()).fail(transportError('ECONNREFUSED'))
      ;(await handle.next()).fail(transportError('ECONNREFUSED')) // the first retry went at once; now the 100 ms backoff
      await vi.advanceTimersByTimeAsync(10)
      ac.abort()
      const err = failure(await out)
      expect(handle.received).toHaveLength(2)
      expect(err.details).toMatchObject({ stoppedBy: 'cancelled' })
      expect(retries('cancelled')).toBe(1)
    })

    it('an error the classifier calls not retryable: MESHLET_ERR_UPSTREAM at once, without "gave up"', async () => {
      const { env, handle, call } = setup()
      const out = call(fakeCall(), callContext(env))
      const cause = new Error('bad gateway config')
      ;(await handle.next()).fail(cause)
      const err = failure(await out.catch((e: unknown) => e))
      expect(isMeshletError(err, ErrorCodes.UPSTREAM)).toBe(true)
      expect(err.cause).toBe(cause)
      expect(err.message).not.toMatch(/Gave up/)
      expect(err.details).toMatchObject({ stoppedBy: 'not_retryable', attempt: 1 })
      expect(handle.received).toHaveLength(1)
    })

    it('says a non-retryable error on a retry stopped the call, not the attempt count', async () => {
      const { env, handle, call } = setup({ policy: { attempts: 2 } })
      const out = call(fakeCall(), callContext(env)).catch((e: unknown) => e)
      ;(await handle.next()).respond(response(503))
      ;(await handle.next()).fail(new Error('bad gateway config'))
      const err = failure(await out)
      expect(err.details).toMatchObject({ stoppedBy: 'not_retryable', attempt: 2 })
    })

    it('an error that says nothing of the endpoint (Ignorable) passes through untouched', async () => {
      const { env, handle, call } = setup()
      const req = fakeCall()
      const out = call(req, callContext(env))
      req.aborted = true
      const reason = new Error('client went away')
      ;(await handle.next()).fail(reason)
      await expect(out).rejects.toBe(reason)
    })

    it('a MeshletError is not wrapped again', async () => {
      const { env, handle, call } = setup()
      const out = call(fakeCall(), callContext(env))
      const deadline = new MeshletError(ErrorCodes.DEADLINE, 'ran past its deadline', { retryable: false })
      ;(await handle.next()).fail(deadline)
      await expect(out).rejects.toBe(deadline)
    })
  })

  describe('budget', () => {
    it('deposits once per call and withdraws once per retry', async () => {
      const budget = new RetryBudget(50, 0, 10_000) // each call adds half a retry
      const { env, handle, retries, call } = setup({ budget })
      handle.answerWith((_r, _c, n) => response(n <= 2 ? 503 : 200))
      await expect(call(fakeCall(), callContext(env))).resolves.toMatchObject({ status: 503 }) // 0.5: no retry
      expect(retries('budget_exhausted')).toBe(1)
      await expect(call(fakeCall(), callContext(env))).resolves.toMatchObject({ status: 200 }) // 1.0: one retry
      expect(handle.received).toHaveLength(3)
      expect(budget.balance()).toBe(0)
    })

    it('a call made for a caller\'s retry is not retried and funds no retries (retries happen at one hop)', async () => {
      const budget = new RetryBudget(100, 0, 10_000)
      const { env, handle, retries, call } = setup({ budget })
      handle.answerWith(() => response(503))
      const ctx = callContext(env)
      ctx.callerRetrying = true
      await expect(call(fakeCall(), ctx)).resolves.toMatchObject({ status: 503 })
      expect(handle.received).toHaveLength(1)
      expect(retries('caller_retrying')).toBe(1)
      expect(budget.balance()).toBe(0)
    })

    it('a spent budget stops with MESHLET_ERR_BUDGET_EXHAUSTED naming endpoint, attempt, deadline and budget left', async () => {
      const { env, handle, call } = setup({ budget: new RetryBudget(0, 0, 10_000), pick: true })
      const out = call(fakeCall(), callContext(env, { timeout: 2000 }))
      const r = await handle.next()
      r.fail(transportError('ECONNREFUSED'))
      const err = failure(await out.catch((e: unknown) => e))
      expect(isMeshletError(err, ErrorCodes.BUDGET_EXHAUSTED)).toBe(true)
      expect(err.message).toBe(
        `Call to "payments" failed at ${r.seen.endpoint!.url} on attempt 1: ECONNREFUSED connect ECONNREFUSED 10.0.0.1:80. Not retried: the retry budget is spent (the destination is failing broadly; retrying would add load). Deadline left: 2000ms; retry budget left: 0.`,
      )
      expect(err.retryable).toBe(false)
      expect(err.details).toEqual({ service: 'payments', endpoint: r.seen.endpoint!.url, tried: [r.seen.endpoint!.url], attempt: 1, stoppedBy: 'budget_exhausted' })
    })

    it('names the last endpoint tried, every earlier one, and the budget left after the retries', async () => {
      const { env, handle, call } = setup({ budget: new RetryBudget(20, 10, 10_000), pick: true, policy: { attempts: 1 } })
      handle.answerWith(() => {
        throw transportError('ECONNREFUSED')
      })
      const err = failure(await call(fakeCall(), callContext(env, { timeout: Infinity })).catch((e: unknown) => e))
      const [first, second] = handle.received
      expect(second!.seen.endpoint).not.toBe(first!.seen.endpoint)
      expect(err.message).toContain(`failed at ${second!.seen.endpoint!.url} on attempt 2`)
      expect(err.message).toContain(`Earlier attempts failed at ${first!.seen.endpoint!.url}.`)
      expect(err.details).toMatchObject({ tried: [first!.seen.endpoint!.url, second!.seen.endpoint!.url] })
      expect(err.message).toMatch(/Deadline left: none set; retry budget left: 19\.$/)
    })
  })

  it('runs nothing more after the answer: no stray attempt once a retry succeeded', async () => {
    const { env, handle, call } = setup()
    handle.answerWith((_r, _c, n) => response(n === 1 ? 503 : 200))
    await call(fakeCall(), callContext(env))
    await settle()
    expect(handle.received).toHaveLength(2)
  })
})
