import { afterEach, describe, expect, it } from 'vitest'
import type { Balancer } from '../balance/balancer.js'
import { address, balancerOf, callContext, RETRIES, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response } from '../client/testing/fake-protocol.test-support.js'
import { recordingMetrics } from '../client/testing/recording-metrics.test-support.js'
import { RetryBudget } from '../resilience/retry-budget.js'
import { retryFilter } from '../resilience/retry-filter.js'
import { mirrorFilter } from './mirror-filter.js'

let balancer: Balancer
afterEach(() => balancer?.close())

function shadow() {
  balancer = balancerOf([address(9001, { revision: 'canary' })])
  return balancer.pickShadow('canary')!
}

describe('mirrorFilter', () => {
  it('sends the copy the route chose before calling next, once, and clears it from the context', async () => {
    const env = fakeEnv()
    const { protocol, handle, log } = fakeProtocol()
    const call = stackOf([mirrorFilter(protocol)], protocol.endpoint)
    const ctx = callContext(env)
    const e = shadow()
    ctx.mirror = e
    const req = fakeCall()
    const out = call(req, ctx)
    const r = await handle.next()
    expect(log.mirrors).toEqual([{ call: req, endpoint: e }])
    expect(r.ctx.mirror).toBeUndefined()
    r.respond(response(200))
    await expect(out).resolves.toMatchObject({ status: 200 })
  })

  it('sends nothing when the route chose no shadow', async () => {
    const env = fakeEnv()
    const { protocol, handle, log } = fakeProtocol()
    const out = stackOf([mirrorFilter(protocol)], protocol.endpoint)(fakeCall(), callContext(env))
    ;(await handle.next()).respond(response(200))
    await out
    expect(log.mirrors).toHaveLength(0)
  })

  it('mirrors once per call, not once per attempt (it sits outside retry)', async () => {
    const env = fakeEnv({ fallback: 0 }) // jitter 0
    const { protocol, handle, log } = fakeProtocol()
    const retry = retryFilter(protocol, { ...RETRIES, backoffBase: 0, backoffMax: 0 }, new RetryBudget(20, 10, 10_000), recordingMetrics().metrics, env)
    const ctx = callContext(env)
    ctx.mirror = shadow()
    handle.answerWith((_req, _ctx, n) => response(n < 3 ? 503 : 200))
    await expect(stackOf([mirrorFilter(protocol), retry], protocol.endpoint)(fakeCall(), ctx)).resolves.toMatchObject({ status: 200 })
    expect(handle.received).toHaveLength(3)
    expect(log.mirrors).toHaveLength(1)
  })

  it('is left out for a transport that cannot mirror', () => {
    expect(mirrorFilter(fakeProtocol({ without: ['mirror'] }).protocol)).toBeUndefined()
  })
})
