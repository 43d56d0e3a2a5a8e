/**
 * Retries from the caller's side: the retry budget caps the extra load on a failing destination,
 * Retry-After is honoured when the deadline allows, and non-idempotent calls are retried only when
 * the server cannot have processed them.
 */
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isMeshletError } from '@meshlet/core'
import { Cleanup, call, closedPort, endpointOf, readAll, reply, runLoad, startBackend, startMesh, type BackendHandler, type TestBackend } from './fixtures/client-helpers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** Reads the request body, records it on `bodies`, then answers with `then`. */
function recordBody(bodies: Buffer[], then: BackendHandler): BackendHandler {
  return (req, res, backend) => {
    void readAll(req).then((body) => {
      bodies.push(body)
      then(req, res, backend)
    })
  }
}

/** Answers after the request was read: the handler must not read it again. */
const respond = (status: number, headers: Record<string, string> = {}, body = 'ok'): BackendHandler => (_req, res) => res.writeHead(status, headers).end(body)

describe('client retry budget', () => {
  it('caps total attempts at about (1 + percent) × calls + the reserve when every endpoint fails', async () => {
    const backends = [await startBackend(cleanup, reply(503, {}, 'busy')), await startBackend(cleanup, reply(503, {}, 'busy'))]
    const percent = 20
    const minPerSecond = 5
    const ttlSeconds = 10
    const { agent, mesh } = await startMesh(cleanup, {
      payments: {
        endpoints: backends.map((b) => b.url),
        breaker: false,
        outlier: false,
        retries: { attempts: 3, backoff: { base: 1, max: 4 }, budget: { percent, minPerSecond, ttl: ttlSeconds * 1000 } },
      },
    })

    const n = 1000
    const results = await runLoad(n, 16, () => call(agent, 'http://payments/items'))
    // Every call got the upstream's 503 back (a retryable status is answered, not turned into an error).
    expect(results.every((r) => r.status === 'fulfilled' && r.value.status === 503)).toBe(true)

    const attempts = backends.reduce((sum, b) => sum + b.seen.length, 0)
    const bound = n * (1 + percent / 100) + minPerSecond * ttlSeconds
    expect(attempts).toBeGreaterThan(n)
    expect(attempts).toBeLessThanOrEqual(bound + 2)
    // Without a budget 3 retries each would have meant 4,000 attempts; the budget is spent now.
    expect(mesh.inspect().destinations.payments!.retryBudget!.balance).toBeLessThan(1)
  })
})

describe('client Retry-After', () => {
  it('waits at least the Retry-After delay before retrying an idempotent GET', async () => {
    let n = 0
    const backend = await startBackend(cleanup, (req, res) => {
      req.resume()
      if (n++ === 0) res.writeHead(503, { 'retry-after': '1' }).end('later')
      else res.writeHead(200).end('done')
    })
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url], breaker: false, outlier: false, timeout: 5000, retries: { attempts: 2, backoff: { base: 1, max: 5 } } } })

    const r = await call(agent, 'http://payments/slowly')
    expect(r).toMatchObject({ status: 200, body: 'done' })
    expect(backend.seen.length).toBe(2)
    const gap = backend.seen[1]!.at - backend.seen[0]!.at
    expect(gap).toBeGreaterThanOrEqual(950)
    expect(gap).toBeLessThan(2500)
  })

  it('does not retry when Retry-After would pass the deadline: the 503 comes back at once', async () => {
    const backend = await startBackend(cleanup, reply(503, { 'retry-after': '1' }, 'later'))
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [backend.url], breaker: false, outlier: false, timeout: 400, retries: { attempts: 2, backoff: { base: 1, max: 5 } } } })

    const t0 = performance.now()
    const r = await call(agent, 'http://payments/slowly')
    const took = performance.now() - t0
    expect(r).toMatchObject({ status: 503, body: 'later' })
    expect(backend.seen.length).toBe(1)
    expect(took).toBeLessThan(350)
  })
})

describe('client retries of non-idempotent calls', () => {
  const quickRetries = { attempts: 2, backoff: { base: 1, max: 5 } }

  it('a POST that reached the server (connection dropped after the request was read) is not retried', async () => {
    const dropAfterRead: BackendHandler = (req) => void readAll(req).then(() => req.socket.destroy())
    const a = await startBackend(cleanup, dropAfterRead)
    const b = await startBackend(cleanup, dropAfterRead)
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [a.url, b.url], breaker: false, outlier: false, retries: quickRetries } })

    const err = await call(agent, 'http://payments/charge', { method: 'POST', body: '{"amount":100}' }).catch((e: unknown) => e)
    expect(isMeshletError(err, ErrorCodes.UPSTREAM), String(err)).toBe(true)
    expect(a.seen.length + b.seen.length).toBe(1)

    // The same failure on an idempotent PUT is retried on the other endpoint.
    const err2 = await call(agent, 'http://payments/charge/1', { method: 'PUT', body: '{"amount":100}' }).catch((e: unknown) => e)
    expect(isMeshletError(err2, ErrorCodes.UPSTREAM), String(err2)).toBe(true)
    expect(a.seen.length + b.seen.length).toBe(1 + 3)
  })

  it('a POST refused at connect is retried on another endpoint and succeeds, sent exactly once', async () => {
    const bodies: Buffer[] = []
    const good = await startBackend(cleanup, recordBody(bodies, respond(201, {}, 'charged')))
    const refused = `http://127.0.0.1:${await closedPort()}`
    const { agent, mesh } = await startMesh(cleanup, {
      payments: { endpoints: [refused, good.url], balancer: 'round-robin', breaker: false, outlier: false, retries: quickRetries },
    })

    // Round-robin alternates, so within a few calls one starts on the refused port.
    let calls = 0
    while (endpointOf(mesh, 'payments', refused).failures < 2 && calls < 10) {
      const r = await call(agent, 'http://payments/charge', { method: 'POST', body: `{"n":${calls}}` })
      expect(r).toMatchObject({ status: 201, body: 'charged' })
      calls++
    }
    expect(endpointOf(mesh, 'payments', refused).failures).toBe(2)
    expect(good.seen.length).toBe(calls)
    expect(bodies.map(String)).toEqual(Array.from({ length: calls }, (_, i) => `{"n":${i}}`))
  })

  it('a POST answered 503 with meshlet-rejected: 1 is retried elsewhere; a plain 503 is not', async () => {
    const rejecting = await startBackend(cleanup, reply(503, { 'meshlet-rejected': '1' }, 'shed'))
    const bodies: Buffer[] = []
    const good = await startBackend(cleanup, recordBody(bodies, respond(201, {}, 'charged')))
    const { agent } = await startMesh(cleanup, {
      payments: { endpoints: [rejecting.url, good.url], balancer: 'round-robin', breaker: false, outlier: false, retries: quickRetries },
    })

    let calls = 0
    while (rejecting.seen.length < 2 && calls < 10) {
      const r = await call(agent, 'http://payments/charge', { method: 'POST', body: 'pay' })
      expect(r).toMatchObject({ status: 201, body: 'charged' })
      calls++
    }
    expect(rejecting.seen.length).toBe(2)
    expect(good.seen.length).toBe(calls)
    expect(bodies.every((b) => String(b) === 'pay')).toBe(true)

    // Without the marker, a 503 to a POST may have been processed: it goes back to the caller.
    rejecting.handler = reply(503, {}, 'overloaded')
    const seen = rejecting.seen.length + good.seen.length
    let plain: { status: number; body: string } | undefined
    for (let i = 0; i < 4 && plain === undefined; i++) {
      const r = await call(agent, 'http://payments/charge', { method: 'POST', body: 'pay' })
      if (r.status === 503) plain = r
    }
    expect(plain).toEqual(expect.objectContaining({ status: 503, body: 'overloaded' }))
    expect(rejecting.seen.length + good.seen.length - seen).toBeLessThanOrEqual(4)
  })

  it('each retry goes to an endpoint the call has not tried yet, while there is one', async () => {
    // Round-robin over two failing endpoints and a good one: with 2 retries, every call reaches the
    // good one. Up to 60 retries go within a second, more than the default budget's burst: a budget that never binds.
    const bad1 = await startBackend(cleanup, reply(503, {}, 'down'))
    const bad2 = await startBackend(cleanup, reply(503, {}, 'down'))
    const good = await startBackend(cleanup, reply(200, {}, 'ok'))
    const { agent } = await startMesh(cleanup, {
      payments: { endpoints: [bad1.url, bad2.url, good.url], balancer: 'round-robin', breaker: false, outlier: false, retries: { ...quickRetries, attempts: 2, budget: { percent: 100, minPerSecond: 1000 } } },
    })
    for (let i = 0; i < 30; i++) expect(await call(agent, 'http://payments/x')).toMatchObject({ status: 200, body: 'ok' })
    expect(good.seen.length).toBe(30)
    expect(bad1.seen.length + bad2.seen.length).toBeGreaterThan(0)
  })

  it('a streamed POST body that was sent is not replayed; a Buffer body is', async () => {
    const bodies: Buffer[] = []
    const shed = recordBody(bodies, respond(503, { 'meshlet-rejected': '1' }, 'shed'))
    const a = await startBackend(cleanup, shed)
    const b = await startBackend(cleanup, shed)
    const { agent } = await startMesh(cleanup, { payments: { endpoints: [a.url, b.url], breaker: false, outlier: false, retries: quickRetries } })
    const total = (xs: TestBackend[]) => xs.reduce((s, x) => s + x.seen.length, 0)
    const payload = Buffer.alloc(64 * 1024, 'x')

    // A Buffer is sent again on each retry: 1 + 2 attempts, every one with the whole body.
    const r1 = await call(agent, 'http://payments/upload', { method: 'POST', body: payload })
    expect(r1.status).toBe(503)
    expect(total([a, b])).toBe(3)
    expect(bodies.length).toBe(3)
    expect(bodies.every((x) => x.equals(payload))).toBe(true)

    // A Readable is consumed by the first attempt and cannot be sent again.
    const r2 = await call(agent, 'http://payments/upload', { method: 'POST', body: Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]) })
    expect(r2).toMatchObject({ status: 503, body: 'shed' })
    expect(total([a, b])).toBe(4)
    expect(bodies.length).toBe(4)
    expect(bodies[3]!.equals(payload)).toBe(true)
  })
})
