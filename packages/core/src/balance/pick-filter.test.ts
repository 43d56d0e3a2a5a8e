import { afterEach, describe, expect, it, vi } from 'vitest'
import type { CallContext } from '../client/call-context.js'
import { address, balancerOf, callContext, ROUND_ROBIN, settle, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv, T0, type FakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, LOAD, response, transportError, type FakeProtocolOptions } from '../client/testing/fake-protocol.test-support.js'
import type { BalancerPolicy } from '../config/mesh-options.js'
import type { EndpointAddress } from '../discovery/resolver.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import type { Balancer } from './balancer.js'
import { pickFilter } from './pick-filter.js'

let balancer: Balancer | undefined
afterEach(async () => {
  vi.useRealTimers()
  await balancer?.close()
  balancer = undefined
})

const THREE = [address(9001), address(9002), address(9003)]
const RING: BalancerPolicy = { ...ROUND_ROBIN, type: 'ring-hash', hashHeader: 'x-user' }

function setup(opts: { endpoints?: EndpointAddress[]; policy?: BalancerPolicy; protocol?: FakeProtocolOptions; env?: FakeEnv } = {}) {
  const env = opts.env ?? fakeEnv()
  const { protocol, handle } = fakeProtocol(opts.protocol)
  const b = (balancer = balancerOf(opts.endpoints ?? THREE, opts.policy))
  const call = stackOf([pickFilter(b, protocol, env)], protocol.endpoint)
  return { env, handle, balancer: b, call, state: (port: number) => b.snapshot().find((s) => s.url === `http://10.0.0.1:${port}`)! }
}

describe('pickFilter', () => {
  it('sets the attempt’s endpoint, holds it in flight while the attempt runs and records it once', async () => {
    const { env, handle, call } = setup()
    const ctx = callContext(env)
    const out = call(fakeCall(), ctx)
    const r = await handle.next()
    const e = r.seen.endpoint!
    expect(ctx.endpoint).toBe(e)
    expect(e.inflight).toBe(1)
    expect(e.requests).toBe(0)
    r.respond(response(200))
    await out
    expect(e.inflight).toBe(0)
    expect(e.requests).toBe(1)
    expect(e.failures).toBe(0)
  })

  it('takes the endpoint out of flight once on an error, and records the failure', async () => {
    const { env, handle, call } = setup()
    const out = call(fakeCall(), callContext(env))
    const r = await handle.next()
    const err = transportError('ECONNRESET')
    r.fail(err)
    await expect(out).rejects.toBe(err)
    expect(r.seen.endpoint!).toMatchObject({ inflight: 0, requests: 1, failures: 1 })
  })

  it('records a failed response as a failure of the endpoint', async () => {
    const { env, handle, call } = setup()
    const out = call(fakeCall(), callContext(env))
    const r = await handle.next()
    r.respond(response(500))
    await out
    expect(r.seen.endpoint!).toMatchObject({ inflight: 0, requests: 1, failures: 1, consecutiveFailures: 1 })
  })

  it('does not charge the endpoint for an error that says nothing of it (Ignorable)', async () => {
    const { env, handle, call } = setup()
    const req = fakeCall()
    const out = call(req, callContext(env))
    const r = await handle.next()
    req.aborted = true
    r.fail(new Error('client went away'))
    await out.catch(() => undefined)
    expect(r.seen.endpoint!).toMatchObject({ inflight: 0, failures: 0 })
  })

  it('feeds the load the server reported back to the balancer', async () => {
    const { env, handle, call } = setup()
    const out = call(fakeCall(), callContext(env))
    const r = await handle.next()
    r.respond(response(200, { [LOAD]: '0.7' }))
    await out
    expect(r.seen.endpoint!.reportedLoad).toBe(0.7)
  })

  it('keys a ring-hash pick by the request header', async () => {
    const { env, handle, call } = setup({ policy: RING })
    const ctx = callContext(env)
    void call(fakeCall({ headers: { 'x-user': 'ada' } }), ctx)
    await handle.next()
    expect(ctx.hashKey).toBe('ada')
  })

  it('sends a retry elsewhere: the previous endpoint goes on ctx.tried and the pick avoids it', async () => {
    const { env, handle, call } = setup({ policy: RING })
    const req = () => fakeCall({ headers: { 'x-user': 'ada' } })
    handle.answerWith(() => response(503))
    // Control: the same key picks the same endpoint, call after call.
    const a = callContext(env)
    const b = callContext(env)
    await call(req(), a)
    await call(req(), b)
    expect(b.endpoint).toBe(a.endpoint)
    // A retry of `a` (same context, attempt 2) avoids it.
    a.attempt = 2
    await call(req(), a)
    expect(a.tried).toEqual([handle.received[0]!.seen.endpoint])
    expect(a.endpoint).not.toBe(handle.received[0]!.seen.endpoint)
    // The endpoint is listed once however often it is seen again.
    a.attempt = 3
    await call(req(), a)
    expect(a.tried).toHaveLength(2)
    expect(new Set(a.tried).size).toBe(2)
  })

  it('prefers the endpoints the transport can use now (usable), asking with the request', async () => {
    const usable = vi.fn(() => (e: { address: { port: number } }) => e.address.port === 9003)
    const { env, handle, call } = setup({ protocol: { usable } })
    handle.answerWith(() => response(200))
    const req = fakeCall()
    for (let i = 0; i < 6; i++) await call(req, callContext(env))
    expect(handle.received.map((r) => r.seen.endpoint!.address.port)).toEqual([9003, 9003, 9003, 9003, 9003, 9003])
    expect(usable).toHaveBeenCalledWith(req)
  })

  it('falls back to any endpoint while none is usable', async () => {
    const { env, handle, call } = setup({ protocol: { usable: () => () => false } })
    handle.answerWith(() => response(200))
    await expect(call(fakeCall(), callContext(env))).resolves.toMatchObject({ status: 200 })
  })

  describe('a streaming response (whenEnded)', () => {
    it('keeps the endpoint in flight until the stream ends, then records the final outcome once', async () => {
      const { env, handle, call } = setup({ protocol: { streaming: true } })
      const out = call(fakeCall(), callContext(env))
      const r = await handle.next()
      const res = response(200, {}, { streaming: true })
      r.respond(res)
      await expect(out).resolves.toBe(res)
      const e = r.seen.endpoint!
      expect(e).toMatchObject({ inflight: 1, requests: 0 })
      res.end(response(500, { [LOAD]: '0.4' }))
      expect(e).toMatchObject({ inflight: 0, requests: 1, failures: 1, reportedLoad: 0.4 })
    })

    it('records a complete response at once', async () => {
      const { env, handle, call } = setup({ protocol: { streaming: true } })
      const out = call(fakeCall(), callContext(env))
      const r = await handle.next()
      r.respond(response(200))
      await out
      expect(r.seen.endpoint!).toMatchObject({ inflight: 0, requests: 1 })
    })
  })

  describe('before discovery found any endpoint', () => {
    it('waits within the deadline for the first one, then sends to it', async () => {
      vi.useFakeTimers()
      const { env, handle, balancer, call } = setup({ endpoints: [], env: fakeEnv({ now: 'timers' }) })
      const out = call(fakeCall(), callContext(env, { timeout: 1000 }))
      await vi.advanceTimersByTimeAsync(500)
      expect(handle.received).toHaveLength(0)
      balancer.applyChanges([{ type: 'insert', endpoint: address(9009) }])
      const r = await handle.next()
      expect(r.seen.endpoint!.url).toBe('http://10.0.0.1:9009')
      r.respond(response(200))
      await expect(out).resolves.toMatchObject({ status: 200 })
    })

    it('fails with MESHLET_ERR_NO_ENDPOINT when the deadline passes first', async () => {
      vi.useFakeTimers()
      const { env, handle, call } = setup({ endpoints: [], env: fakeEnv({ now: 'timers' }) })
      const out = call(fakeCall(), callContext(env, { timeout: 1000 })).catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(999)
      let done = false
      void out.then(() => (done = true))
      await settle()
      expect(done).toBe(false)
      await vi.advanceTimersByTimeAsync(1)
      const err = await out
      expect(isMeshletError(err, ErrorCodes.NO_ENDPOINT)).toBe(true)
      expect((err as Error).message).toMatch(/No endpoint is available for service "payments": discovery has found no endpoint/)
      expect(handle.received).toHaveLength(0)
    })

    it('fails at once without a deadline to wait within', async () => {
      const { env, call } = setup({ endpoints: [] })
      await expect(call(fakeCall(), callContext(env, { timeout: Infinity }))).rejects.toMatchObject({ code: ErrorCodes.NO_ENDPOINT })
    })

    it('stops waiting when the caller cancels', async () => {
      const { env, call } = setup({ endpoints: [] })
      const ac = new AbortController()
      const out = call(fakeCall(), callContext(env, { timeout: 60_000, signal: ac.signal }))
      ac.abort()
      await expect(out).rejects.toMatchObject({ code: ErrorCodes.NO_ENDPOINT })
    })

    it('waits on the stack’s clock, not the wall clock', async () => {
      vi.useFakeTimers({ now: T0 + 60_000 }) // the wall clock a minute ahead of the stack's
      const { env, handle, balancer, call } = setup({ endpoints: [], env: fakeEnv({ now: T0 }) })
      const ctx: CallContext = callContext(env, { timeout: 10_000 })
      const out = call(fakeCall(), ctx).catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(1)
      balancer.applyChanges([{ type: 'insert', endpoint: address(9009) }])
      ;(await Promise.race([handle.next(), out.then(() => undefined)]))?.respond(response(200))
      await expect(out).resolves.toMatchObject({ status: 200 })
    })
  })
})
