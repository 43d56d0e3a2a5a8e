/**
 * Deadlines on outbound calls: no time left means no network write at all; a destination timeout
 * ends a call to a server that never answers in about that time; per-try timeouts move a call to
 * another endpoint; and a call cancelled while it waits to retry ends with an error.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { callScope, DEADLINE_HEADER, ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, ChannelRecorder, call, reply, startBackend, startMesh, type BackendHandler } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** Reads the request and never answers (the socket is closed at teardown). */
const hang: BackendHandler = (req) => void req.resume()

describe('client deadlines', () => {
  it('a call with no time left fails with MESHLET_ERR_DEADLINE and opens no connection', async () => {
    const backend = await startBackend(cleanup, reply(200))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url] } })

    for (const deadline of [Date.now() - 1, Date.now()]) {
      const err = await callScope.run({ deadline, signal: undefined }, () => call(agent, 'http://payments/x')).catch((e: unknown) => e)
      expect(isMeshletError(err, ErrorCodes.DEADLINE), String(err)).toBe(true)
      expect((err as { details?: { sent?: boolean } }).details?.sent).toBe(false)
    }
    expect(backend.connections).toBe(0)
    expect(backend.seen.length).toBe(0)

    // With time left the same call goes out, carrying the caller's deadline.
    const deadline = Date.now() + 5000
    const ok = await callScope.run({ deadline, signal: undefined }, () => call(agent, 'http://payments/x'))
    expect(ok.status).toBe(200)
    expect(backend.connections).toBe(1)
    expect(backend.seen[0]!.headers[DEADLINE_HEADER]).toBe(String(deadline))
  })

  it('a 100 ms destination timeout ends a call to a server that never answers in about 100 ms', async () => {
    const backend = await startBackend(cleanup, hang)
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url], timeout: 100 } })

    const t0 = Date.now()
    const err = await call(agent, 'http://payments/never').catch((e: unknown) => e)
    const took = Date.now() - t0
    expect(isMeshletError(err, ErrorCodes.DEADLINE), String(err)).toBe(true)
    expect(took).toBeGreaterThanOrEqual(95)
    expect(took).toBeLessThan(600)
    // Sent once (the deadline is the whole call's: no retry), carrying the absolute deadline.
    expect(backend.seen.length).toBe(1)
    const sentDeadline = Number(backend.seen[0]!.headers[DEADLINE_HEADER])
    expect(sentDeadline).toBeGreaterThanOrEqual(t0 + 100)
    expect(sentDeadline).toBeLessThanOrEqual(t0 + 100 + 50)
  })

  it('a per-try timeout abandons a hanging endpoint and retries the call on another', async () => {
    const stuck = await startBackend(cleanup, hang)
    const good = await startBackend(cleanup, reply(200, {}, 'fine'))
    const { agent } = await startMesh(cleanup, {
      payments: { endpoints: [stuck.url, good.url], balancer: 'round-robin', outlier: false, breaker: false, timeout: 3000, retries: { attempts: 2, perTryTimeout: 100, backoff: { base: 1, max: 5 } } },
    })

    let calls = 0
    while (stuck.seen.length === 0 && calls < 6) {
      const t0 = Date.now()
      const r = await call(agent, 'http://payments/x')
      expect(r).toMatchObject({ status: 200, body: 'fine' })
      expect(Date.now() - t0).toBeLessThan(1000)
      calls++
    }
    expect(stuck.seen.length).toBe(1)
    expect(good.seen.length).toBe(calls)
  })

  it('a call cancelled by its inbound request while waiting out Retry-After fails instead of returning the discarded response', async () => {
    const backend = await startBackend(cleanup, reply(503, { 'retry-after': '1' }, 'later'))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url], breaker: false, outlier: false, timeout: 5000, retries: { attempts: 2, backoff: { base: 1, max: 5 } } } })
    const inbound = new AbortController()
    // Cancel once the client has the whole 503 and the retry filter is waiting out its Retry-After.
    const completed = new ChannelRecorder(cleanup, 'undici:request:trailers')
    void completed.waitFor().then(() => setImmediate(() => inbound.abort(new Error('inbound request cancelled'))))

    const outcome = await callScope.run({ deadline: Date.now() + 5000, signal: inbound.signal }, () => call(agent, 'http://payments/x')).then(
      (r) => ({ resolved: r }),
      (e: unknown) => ({ rejected: e }),
    )
    expect(outcome).not.toHaveProperty('resolved')
    expect(String((outcome as { rejected: unknown }).rejected)).toMatch(/cancelled/)
    expect(backend.seen.length).toBe(1)
    expect(inbound.signal.aborted).toBe(true)
  })
})
