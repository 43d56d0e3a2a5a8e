import { describe, expect, it } from 'vitest'
import { newCallContext } from '../client/call-context.js'
import { stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeCall, fakeProtocol, response } from '../client/testing/fake-protocol.test-support.js'
import { metricsFilter } from './metrics-filter.js'

/** A context whose call started `ms` ago. */
function startedAgo(ms: number) {
  return { ...newCallContext('payments', Infinity, undefined, true), start: performance.now() - ms }
}

describe('metricsFilter', () => {
  it('records one duration per call at the response, since the call started, and returns the response untouched', async () => {
    const { protocol, handle, log } = fakeProtocol()
    const req = fakeCall()
    const out = stackOf([metricsFilter(protocol)], protocol.endpoint)(req, startedAgo(2500))
    const r = await handle.next()
    expect(log.durations).toHaveLength(0)
    const res = response(503)
    r.respond(res)
    await expect(out).resolves.toBe(res)
    expect(log.durations).toHaveLength(1)
    expect(log.durations[0]).toMatchObject({ call: req, res, error: undefined })
    expect(log.durations[0]!.seconds).toBeGreaterThanOrEqual(2.5)
    expect(log.durations[0]!.seconds).toBeLessThan(3)
  })

  it('records an error once, with the error, and rethrows the same error', async () => {
    const { protocol, handle, log } = fakeProtocol()
    const out = stackOf([metricsFilter(protocol)], protocol.endpoint)(fakeCall(), startedAgo(10))
    const boom = new Error('boom')
    ;(await handle.next()).fail(boom)
    await expect(out).rejects.toBe(boom)
    expect(log.durations).toEqual([expect.objectContaining({ res: undefined, error: boom })])
  })

  it('counts a call that failed before any attempt (a filter further in threw)', async () => {
    const { protocol, handle, log } = fakeProtocol()
    const refuse = () => Promise.reject(new Error('breaker open'))
    await expect(stackOf([metricsFilter(protocol), refuse], protocol.endpoint)(fakeCall(), startedAgo(0))).rejects.toThrow('breaker open')
    expect(handle.received).toHaveLength(0)
    expect(log.durations).toHaveLength(1)
  })

  it('records a streaming response at its end, with the final outcome, exactly once', async () => {
    const { protocol, handle, log } = fakeProtocol({ streaming: true })
    const out = stackOf([metricsFilter(protocol)], protocol.endpoint)(fakeCall(), startedAgo(0))
    const res = response(200, {}, { streaming: true })
    ;(await handle.next()).respond(res)
    await expect(out).resolves.toBe(res)
    expect(log.durations).toHaveLength(0)
    const final = response(500)
    res.end(final)
    expect(log.durations).toEqual([expect.objectContaining({ res: final, error: undefined })])
  })

  it('records a complete response at once when the protocol has whenEnded', async () => {
    const { protocol, handle, log } = fakeProtocol({ streaming: true })
    const out = stackOf([metricsFilter(protocol)], protocol.endpoint)(fakeCall(), startedAgo(0))
    ;(await handle.next()).respond(response(200))
    await out
    expect(log.durations).toHaveLength(1)
  })
})
