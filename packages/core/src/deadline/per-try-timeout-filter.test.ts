import { describe, expect, it } from 'vitest'
import { callContext, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response } from '../client/testing/fake-protocol.test-support.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { attemptExpired, perTryTimeoutFilter } from './per-try-timeout-filter.js'

describe('perTryTimeoutFilter', () => {
  it('sets attemptDeadline from the per-try timeout on the clock, for each attempt anew', async () => {
    const env = fakeEnv()
    const { protocol, handle } = fakeProtocol()
    const call = stackOf([perTryTimeoutFilter(env)], protocol.endpoint)
    const ctx = callContext(env, { timeout: 10_000, perTryTimeout: 300 })
    const first = call(fakeCall(), ctx)
    const r1 = await handle.next()
    expect(r1.seen.attemptDeadline).toBe(env.now() + 300)
    r1.respond(response(503))
    await first
    env.advance(1000)
    ctx.attempt = 2
    const second = call(fakeCall(), ctx)
    const r2 = await handle.next()
    expect(r2.seen.attemptDeadline).toBe(env.now() + 300)
    r2.respond(response(200))
    await expect(second).resolves.toMatchObject({ status: 200 })
  })

  it('leaves attemptDeadline at Infinity without a per-try timeout', async () => {
    const env = fakeEnv()
    const { protocol, handle } = fakeProtocol()
    const ctx = callContext(env, { perTryTimeout: Infinity })
    ctx.attemptDeadline = 5 // a stale value from an earlier attempt must not survive
    void stackOf([perTryTimeoutFilter(env)], protocol.endpoint)(fakeCall(), ctx)
    expect((await handle.next()).seen.attemptDeadline).toBe(Infinity)
  })

  it('reads a per-try timeout a route set on the context', async () => {
    const env = fakeEnv()
    const { protocol, handle } = fakeProtocol()
    const ctx = callContext(env)
    ctx.perTryTimeout = 50
    void stackOf([perTryTimeoutFilter(env)], protocol.endpoint)(fakeCall(), ctx)
    expect((await handle.next()).seen.attemptDeadline).toBe(env.now() + 50)
  })
})

describe('attemptExpired', () => {
  it('says per-try, and is retryable, when the attempt’s own bound came first', () => {
    const env = fakeEnv()
    const ctx = callContext(env, { timeout: 10_000 })
    ctx.attemptDeadline = env.now() + 100
    ctx.attempt = 2
    const err = attemptExpired(ctx)
    expect(isMeshletError(err, ErrorCodes.DEADLINE)).toBe(true)
    expect(err.retryable).toBe(true)
    expect(err.message).toMatch(/Attempt 2 .*within the perTryTimeout/)
    expect(err.details).toMatchObject({ perTry: true, sent: true, attempt: 2 })
  })

  it('says the call’s deadline, not retryable, when the deadline came first or at the same time', () => {
    const env = fakeEnv()
    const ctx = callContext(env, { timeout: 100 })
    for (const attemptDeadline of [Infinity, ctx.deadline, ctx.deadline + 1]) {
      ctx.attemptDeadline = attemptDeadline
      const err = attemptExpired(ctx)
      expect(err.retryable).toBe(false)
      expect(err.message).toMatch(/ran past its deadline on attempt 1/)
      expect(err.details).toMatchObject({ perTry: false, sent: true })
    }
  })
})
