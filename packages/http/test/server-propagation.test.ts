/**
 * Deadline and cancellation across three hops, each served by a different adapter:
 * client → A → (meshAgent) → B → (meshAgent) → C. The deadline set by the client reaches C as an
 * absolute `meshlet-deadline`, never later, tightened where a hop's timeout is shorter; when the
 * client goes away, the call in flight at the last hop is cancelled.
 */
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from 'undici'
import { callScope, type Mesh } from '@meshlet/core'
import { meshAgent, type MeshAgent } from '@meshlet/http'
import { gate, meshFor, serve, Teardown, within, type AdapterName, type RouteDef, type Started } from './fixtures/server-harness.js'

interface Seen {
  hop: string
  header: string | null
  deadline: number | null
  remaining: number | null
  at: number
}

interface Chain {
  hop: Seen
  next?: Chain
}

const rotations: [AdapterName, AdapterName, AdapterName][] = [
  ['express', 'fastify', 'node:http'],
  ['fastify', 'node:http', 'express'],
  ['node:http', 'express', 'fastify'],
]

describe.each(rotations)('client → %s → %s → %s', (adapterA, adapterB, adapterC) => {
  const t = new Teardown()
  afterEach(() => t.run())

  function observe(hop: string, header: string | string[] | undefined): Seen {
    const scope = callScope.getStore()
    const at = Date.now()
    const deadline = scope === undefined || scope.deadline === Infinity ? null : scope.deadline
    return { hop, header: typeof header === 'string' ? header : null, deadline, remaining: deadline === null ? null : deadline - at, at }
  }

  /** The last hop: `/work` reports what it saw; `/stall` never answers and reports when its request closes. */
  function lastHopRoutes(stalls: { entered: ReturnType<typeof gate<ServerResponse>> }): RouteDef[] {
    return [
      { method: 'GET', path: '/work', handler: ({ headers }) => ({ body: { hop: observe('C', headers['meshlet-deadline']) } satisfies Chain }) },
      {
        method: 'GET',
        path: '/stall',
        handler: async ({ res }) => {
          stalls.entered.open(res)
          await once(res, 'close')
          return { status: 500, body: { unreachable: true } }
        },
      },
    ]
  }

  /** A middle hop: reports what it saw and calls `next` through its mesh agent (no deadline code). */
  function middleRoutes(name: string, agent: MeshAgent, next: string): RouteDef[] {
    const forward = async (path: string): Promise<Chain> => {
      const res = await agent.request({ origin: `http://${next}`, path, method: 'GET' })
      if (res.statusCode !== 200) throw new Error(`${next}${path} answered ${res.statusCode}`)
      return (await res.body.json()) as Chain
    }
    return [
      {
        method: 'GET',
        path: '/work',
        handler: async ({ headers }) => {
          const hop = observe(name, headers['meshlet-deadline'])
          return { body: { hop, next: await forward('/work') } satisfies Chain }
        },
      },
      {
        method: 'POST',
        path: '/work',
        handler: async ({ headers, body }) => {
          // Runs after the body was read: the call scope must have survived the framework's body parsing.
          const hop = observe(name, headers['meshlet-deadline'])
          return { body: { hop: { ...hop, body }, next: await forward('/work') } }
        },
      },
      { method: 'GET', path: '/stall', handler: async () => ({ body: await forward('/stall') }) },
    ]
  }

  async function chain(opts: { bToCTimeout?: number } = {}) {
    const stalls = { entered: gate<ServerResponse>() }
    const drain = { timeout: 2000 }
    const meshC = await meshFor(t, { service: 'c', drain })
    const C = await serve(adapterC, meshC, lastHopRoutes(stalls))
    t.add(() => C.close())

    const meshB = await meshFor(t, { service: 'b', drain, services: { c: { endpoints: [C.origin], retries: false, ...(opts.bToCTimeout ? { timeout: opts.bToCTimeout } : {}) } } })
    const agentB = meshAgent(meshB)
    t.add(() => agentB.close())
    const B = await serve(adapterB, meshB, middleRoutes('B', agentB, 'c'))
    t.add(() => B.close())

    const meshA = await meshFor(t, { service: 'a', drain, services: { b: { endpoints: [B.origin], retries: false } } })
    const agentA = meshAgent(meshA)
    t.add(() => agentA.close())
    const A = await serve(adapterA, meshA, middleRoutes('A', agentA, 'b'))
    t.add(() => A.close())
    return { A, B, C, stalls, meshes: [meshA, meshB, meshC] as Mesh[] }
  }

  function flatten(c: Chain): Seen[] {
    return c.next ? [c.hop, ...flatten(c.next)] : [c.hop]
  }

  function expectPropagated([a, b, c]: Seen[], clientDeadline: { min: number; max: number }, bToCTimeout: number): void {
    expect(a!.header).not.toBeNull()
    const dA = Number(a!.header)
    expect(dA).toBeGreaterThanOrEqual(clientDeadline.min)
    expect(dA).toBeLessThanOrEqual(clientDeadline.max)
    // Each hop's call scope holds the header it received, as a number.
    for (const s of [a, b, c]) expect(s!.deadline).toBe(Number(s!.header))
    // A's timeout to B (15 s default) is looser than the client's deadline: B gets the very same instant.
    expect(b!.header).toBe(a!.header)
    // B's timeout to C is tighter: C's deadline is earlier, B's call time + the timeout.
    const dC = Number(c!.header)
    expect(dC).toBeLessThan(dA)
    expect(dC).toBeGreaterThanOrEqual(b!.at + bToCTimeout)
    expect(dC).toBeLessThanOrEqual(c!.at + bToCTimeout)
    // Time left only shrinks along the chain.
    expect(a!.remaining!).toBeGreaterThanOrEqual(b!.remaining!)
    expect(b!.remaining!).toBeGreaterThan(c!.remaining!)
    expect(c!.remaining!).toBeLessThanOrEqual(bToCTimeout)
  }

  it('carries a deadline set by a client meshAgent timeout to the third hop, tightened by a hop timeout', async () => {
    const { A } = await chain({ bToCTimeout: 2000 })
    const client = await meshFor(t, { service: 'client', services: { a: { endpoints: [A.origin], timeout: 5000, retries: false } } })
    const agent = meshAgent(client)
    t.add(() => agent.close())
    const before = Date.now()
    const res = await agent.request({ origin: 'http://a', path: '/work', method: 'GET' })
    const after = Date.now()
    expect(res.statusCode).toBe(200)
    expect(res.headers['meshlet-load']).toBeDefined()
    const seen = flatten((await res.body.json()) as Chain)
    expect(seen.map((s) => s.hop)).toEqual(['A', 'B', 'C'])
    expectPropagated(seen, { min: before + 5000, max: after + 5000 }, 2000)
  })

  it('carries an explicit meshlet-deadline through a POST whose body arrives after its headers', async () => {
    const { A } = await chain({ bToCTimeout: 2000 })
    const client = new Client(A.origin)
    t.add(() => client.destroy())
    const deadline = Date.now() + 5000
    const payload = JSON.stringify({ order: 42 })
    // Send the body only once A has the request: the framework reads it on a later event, and the
    // handler must still run in the request's call scope.
    const arrived = once(A.server, 'request')
    const body = Readable.from(
      (async function* () {
        // undici writes the headers with the first chunk.
        yield Buffer.from(payload.slice(0, 1))
        await arrived
        yield Buffer.from(payload.slice(1))
      })(),
    )
    const res = await within(client.request({
      method: 'POST',
      path: '/work',
      headers: { 'meshlet-deadline': String(deadline), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
      body,
    }), 10_000, 'the POST to be answered')
    const text = await res.body.text()
    expect(res.statusCode, text).toBe(200)
    const chainSeen = JSON.parse(text) as Chain
    expect((chainSeen.hop as Seen & { body: unknown }).body).toEqual({ order: 42 })
    const seen = flatten(chainSeen)
    expect(seen.map((s) => s.hop)).toEqual(['A', 'B', 'C'])
    expectPropagated(seen, { min: deadline, max: deadline }, 2000)
  })

  it('cancels the in-flight call at the last hop when the original client aborts', async () => {
    // Default 15 s timeouts everywhere: the only thing that can end C's request soon is the cancellation.
    const { A, stalls } = await chain()
    const client = new Client(A.origin)
    t.add(() => client.destroy())
    const ac = new AbortController()
    const pending = client.request({ method: 'GET', path: '/stall', signal: ac.signal })
    pending.catch(() => {})

    const resC = await within(stalls.entered.promise, 5000, 'the call to reach hop C')
    expect(resC.destroyed).toBe(false)
    // Read the state in a plain listener, before the parked handler wakes up and tries to answer.
    const closedC = new Promise<{ finished: boolean; reqDestroyed: boolean }>((resolve) =>
      resC.once('close', () => resolve({ finished: resC.writableFinished, reqDestroyed: resC.req.destroyed })),
    )

    ac.abort()
    await expect(pending).rejects.toThrow()
    const atClose = await within(closedC, 5000, 'hop C to see its request closed')
    expect(atClose).toEqual({ finished: false, reqDestroyed: true })
  })
})

describe('deadline at the hop: no time left', () => {
  const t = new Teardown()
  afterEach(() => t.run())

  it('fails an outbound call fast, without a network write, when the inbound deadline has passed during the handler', async () => {
    let downstreamCalls = 0
    const meshC = await meshFor(t, { service: 'c' })
    const C: Started = await serve('node:http', meshC, [{ method: 'GET', path: '/x', handler: () => (downstreamCalls++, { body: {} }) }])
    t.add(() => C.close())
    const meshB = await meshFor(t, { service: 'b', services: { c: { endpoints: [C.origin] } } })
    const agent = meshAgent(meshB)
    t.add(() => agent.close())
    let outcome: unknown
    const B = await serve('express', meshB, [
      {
        method: 'GET',
        path: '/late',
        handler: async () => {
          const scope = callScope.getStore()!
          // Wait out the inbound deadline (a short one, set by the test's client).
          await new Promise((r) => setTimeout(r, Math.max(0, scope.deadline - Date.now() + 5)))
          outcome = await agent.request({ origin: 'http://c', path: '/x', method: 'GET' }).then(
            (r) => r.statusCode,
            (err: { code?: string }) => err.code,
          )
          return { body: {} }
        },
      },
    ])
    t.add(() => B.close())
    const client = new Client(B.origin)
    t.add(() => client.destroy())
    const res = await client.request({ method: 'GET', path: '/late', headers: { 'meshlet-deadline': String(Date.now() + 50) } })
    await res.body.dump()
    expect(res.statusCode).toBe(200)
    expect(outcome).toBe('MESHLET_ERR_DEADLINE')
    expect(downstreamCalls).toBe(0)
  })
})
