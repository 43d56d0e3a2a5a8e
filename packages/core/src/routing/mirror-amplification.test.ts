/**
 * Mirroring cannot amplify: whatever the mirror percent, the retries and the answers, a call makes
 * at most one shadow copy, and the copy leaves through the transport's `mirror` (outside retry and
 * outside the stack), so it is never retried and never mirrored again.
 */
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { Balancer } from '../balance/balancer.js'
import { address, balancerOf, callContext, RETRIES, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response } from '../client/testing/fake-protocol.test-support.js'
import { recordingMetrics } from '../client/testing/recording-metrics.test-support.js'
import { FUZZ_SEED } from '../fuzz-runner.fuzz-properties.js'
import { RetryBudget } from '../resilience/retry-budget.js'
import { retryFilter } from '../resilience/retry-filter.js'
import { mirrorFilter } from './mirror-filter.js'
import { routeFilter } from './route-filter.js'
import { RouteTable } from './route-table.js'

let balancer: Balancer | undefined
afterEach(async () => {
  await balancer?.close()
  balancer = undefined
})

describe('mirror amplification', () => {
  it('makes at most one shadow copy per call (exactly one when the draw is under the percent), whatever the retries and answers', async () => {
    balancer = balancerOf([address(9001, { revision: 'stable' }), address(9002, { revision: 'canary' })])
    const b = balancer
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.constantFrom(200, 503, 500, 429), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        async (percent, draw, attempts, answers, calls) => {
          // Every random draw (the mirror's, the retry jitter's) returns `draw`.
          const env = fakeEnv({ fallback: draw })
          const { protocol, handle, log } = fakeProtocol()
          const rec = recordingMetrics()
          const table = new RouteTable([{ service: 'payments', rules: [{ split: [{ revision: 'stable', weight: 100 }], mirror: { revision: 'canary', percent }, retries: { attempts } }] }], 'test')
          const route = routeFilter(table, { requestInfo: protocol.requestInfo!, abortResponse: protocol.abortResponse!, mirror: protocol.mirror }, rec.metrics, (r) => b.pickShadow(r), env)
          const retry = retryFilter(protocol, { ...RETRIES, attempts: 3, backoffBase: 0, backoffMax: 0 }, new RetryBudget(100, 1000, 10_000), rec.metrics, env)
          const stack = stackOf([route, mirrorFilter(protocol), retry], protocol.endpoint)
          handle.answerWith((_req, _ctx, n) => response(answers[(n - 1) % answers.length]!))
          for (let i = 0; i < calls; i++) await stack(fakeCall({ method: 'GET', path: '/pay' }), { ...callContext(env, { idempotent: true }) })
          const expected = draw * 100 < percent ? calls : 0
          expect(log.mirrors).toHaveLength(expected)
          for (const m of log.mirrors) expect(m.endpoint.address.revision).toBe('canary')
          // Only the primary's attempts pass the stack's terminal: the copies never came back through it.
          expect(handle.received.length).toBeGreaterThanOrEqual(calls)
          expect(handle.received.length).toBeLessThanOrEqual(calls * (attempts + 1))
        },
      ),
      { seed: FUZZ_SEED, numRuns: 200 },
    )
  })
})
