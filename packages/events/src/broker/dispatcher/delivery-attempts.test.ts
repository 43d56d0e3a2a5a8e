import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deliverWithRetries } from './delivery-attempts.js'
import { resolveDeliveryPolicy } from './delivery-policy.js'
import { AttemptGroup } from './subscriber-request.js'

// A real subscriber on loopback whose answers each test scripts.
let answers: ((res: ServerResponse) => void)[] = []
let hits = 0
let server: Server
let target: { origin: string; path: string; url: string }
const agent = new Agent()
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => (answers[hits++] ?? ((r) => r.end()))(res))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  target = { origin, path: '/in', url: `${origin}/in` }
})
afterAll(async () => {
  await agent.close()
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

function run(delivery: Parameters<typeof resolveDeliveryPolicy>[0], script: typeof answers) {
  answers = script
  hits = 0
  const policy = resolveDeliveryPolicy(delivery, undefined)
  const attempts = new AttemptGroup()
  const send = () => attempts.post(target, { headers: { 'ce-id': '1' }, body: '' }, { 'ce-id': '1' }, { dispatcher: agent, timeoutMs: policy.timeoutMs, maxBodyBytes: 1024 })
  return deliverWithRetries(send, policy, new AbortController().signal)
}

const status = (code: number, body = '') => (res: ServerResponse) => {
  res.statusCode = code
  res.end(body)
}

describe('deliverWithRetries', () => {
  it('retries a 503 and returns the 2xx that follows', async () => {
    const out = await run({ retry: 2, backoffDelay: 'PT0.001S' }, [status(503), status(200, 'ok')])
    expect(out).toMatchObject({ ok: true, attempts: 2 })
  })

  it('stops at once on a final answer (400), with its status and body', async () => {
    const out = await run({ retry: 5, backoffDelay: 'PT0.001S' }, [status(400, 'no such order')])
    expect(out).toMatchObject({ ok: false, status: 400, attempts: 1 })
    if (!out.ok) expect(out.body.toString()).toBe('no such order')
  })

  it('gives up after retry + 1 attempts with the last answer', async () => {
    const out = await run({ retry: 2, backoffDelay: 'PT0.001S' }, [status(500, 'a'), status(502, 'b'), status(504, 'c')])
    expect(out).toMatchObject({ ok: false, status: 504, attempts: 3 })
  })

  it('reports an attempt that got no answer within delivery.timeout as a dispatch error (status 500, as Knative)', async () => {
    const out = await run({ retry: 0, timeout: 'PT0.05S' }, [() => {}])
    expect(out).toMatchObject({ ok: false, status: 500, attempts: 1 })
    if (!out.ok) expect(out.body.toString()).toMatch(/^dispatch error: .* did not answer within 50ms/)
  })
})
