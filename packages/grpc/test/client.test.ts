/** Client interceptors and generated retry policy against real grpc-js servers on loopback. */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { callScope, createMesh, DEADLINE_HEADER, type Mesh, type MeshOptions } from '@meshlet/core'
import { meshCallOptions, meshClientOptions, meshTarget, register } from '../src/index.js'
import { trackedCalls } from '../src/call-registry.js'
import { EchoClientCtor, insecure, startBackend, unary, type Backend, type EchoClient } from './fixtures/echo.js'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function setup(backends: { url: string }[], service: Record<string, unknown> = {}, idempotent: string[] = [], extra: Partial<MeshOptions> = {}): Promise<{ mesh: Mesh; client: EchoClient }> {
  const mesh = await createMesh({ service: 'web', shutdownSignals: false, ...extra, services: { echo: { endpoints: backends.map((b) => b.url), ...service } } } as MeshOptions)
  const unregister = register(mesh, { idempotent })
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  cleanup.push(() => mesh.close(), unregister, () => client.close())
  return { mesh, client }
}

function backend(id: string, options: Parameters<typeof startBackend>[1] = {}): Promise<Backend> {
  return startBackend(id, options).then((b) => {
    cleanup.push(() => b.server.forceShutdown())
    return b
  })
}

const failWith = (code: grpc.status, trailers?: Record<string, string>) => (): grpc.StatusObject => {
  const metadata = new grpc.Metadata()
  for (const [k, v] of Object.entries(trailers ?? {})) metadata.set(k, v)
  return { code, details: `answered ${grpc.status[code]}`, metadata }
}

describe('retries (generated grpc-js retryPolicy)', () => {
  it('retries UNAVAILABLE for any method, but INTERNAL only for idempotent ones', async () => {
    const a = await backend('a', { handler: failWith(grpc.status.UNAVAILABLE) })
    const { client } = await setup([a], {}, ['/meshlet.test.Echo/Put'])
    await expect(unary(client, { text: 'x' })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE })
    expect(a.calls).toBe(3)

    const b = await backend('b', { handler: failWith(grpc.status.INTERNAL) })
    const { client: c2 } = await setup([b], {}, ['/meshlet.test.Echo/Put'])
    await expect(unary(c2, { text: 'x' })).rejects.toMatchObject({ code: grpc.status.INTERNAL })
    expect(b.calls).toBe(1)
    b.calls = 0
    await expect(unary(c2, { text: 'x' }, {}, undefined, 'Put')).rejects.toMatchObject({ code: grpc.status.INTERNAL })
    expect(b.calls).toBe(3)
  })

  it('never retries DEADLINE_EXCEEDED, even for an idempotent method', async () => {
    const a = await backend('a', { handler: failWith(grpc.status.DEADLINE_EXCEEDED) })
    const { client } = await setup([a], {}, ['meshlet.test.Echo'])
    await expect(unary(client, { text: 'x' }, {}, undefined, 'Put')).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect(a.calls).toBe(1)
  })

  it('honours grpc-retry-pushback-ms', async () => {
    const times: number[] = []
    const a = await backend('a', {
      handler: () => {
        times.push(Date.now())
        return failWith(grpc.status.UNAVAILABLE, { 'grpc-retry-pushback-ms': '300' })()
      },
    })
    const { client } = await setup([a], { retries: { attempts: 1 } })
    await expect(unary(client, { text: 'x' })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE })
    expect(times).toHaveLength(2)
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(280)
  })

  it('a retry goes to a backend the call has not tried, and the call mark never reaches a server', async () => {
    // Round-robin would send every third attempt back to a failing backend; with one good backend
    // of three, each call may fail twice, and its third attempt must be the good one.
    const keys: string[][] = []
    const seen = (call: grpc.ServerUnaryCall<unknown, unknown>) => keys.push(Object.keys(call.metadata.getMap()))
    const bad1 = await backend('bad1', { handler: (_req, call) => (seen(call), failWith(grpc.status.UNAVAILABLE)()) })
    const bad2 = await backend('bad2', { handler: (_req, call) => (seen(call), failWith(grpc.status.UNAVAILABLE)()) })
    const good = await backend('good', { handler: (_req, call) => (seen(call), { from: 'good' }) })
    // A budget that never binds: up to 60 retries go within a second here, more than the default's burst cap.
    const { mesh, client } = await setup([bad1, bad2, good], { balancer: 'round-robin', outlier: false, breaker: false, retries: { attempts: 2, backoff: { base: '1ms', max: '2ms' }, budget: { percent: 100, minPerSecond: 1000 } } })
    for (let i = 0; i < 30; i++) expect((await unary(client, { text: 'x' })).from).toBe('good')
    expect(good.calls).toBe(30)
    expect(bad1.calls + bad2.calls).toBeGreaterThan(0)
    expect(keys.flat()).not.toContain('meshlet-call')
    expect(trackedCalls()).toBe(0)
    expect(mesh.inspect().destinations.echo!.endpoints.reduce((n, e) => n + e.requests, 0)).toBe(30 + bad1.calls + bad2.calls)
  })

  it('a refusal marked not-processed by a meshlet server is retried on another backend', async () => {
    const drainingMesh = await createMesh({ service: 'echo', shutdownSignals: false })
    cleanup.push(() => drainingMesh.close())
    const refusing = await backend('refusing', { mesh: drainingMesh })
    const serving = await backend('serving')
    drainingMesh.inbound.stopAccepting()
    const { client } = await setup([refusing, serving])
    for (let i = 0; i < 20; i++) expect((await unary(client, { text: 'x' }, {}, undefined, 'Put')).from).toBe('serving')
  })
})

describe('perTryTimeout', () => {
  const slowly = (id: string) => async () => {
    await new Promise((r) => setTimeout(r, 400))
    return { from: id }
  }

  it('cancels an attempt with no response headers in time and retries an idempotent call elsewhere', async () => {
    const slow = await backend('slow', { handler: slowly('slow') })
    const fast = await backend('fast')
    const { client } = await setup([slow, fast], { balancer: 'round-robin', outlier: false, breaker: false, retries: { attempts: 2, perTryTimeout: '100ms', backoff: { base: '1ms', max: '2ms' } } }, ['meshlet.test.Echo'])
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now()
      expect((await unary(client, { text: 'x' }, {}, undefined, 'Put')).from).toBe('fast')
      expect(performance.now() - t0).toBeLessThan(350) // never waited out the slow backend's 400 ms
    }
    expect(slow.calls).toBeGreaterThan(0)
  })

  it('ends a call that is not idempotent with DEADLINE_EXCEEDED instead of retrying it', async () => {
    const slow = await backend('slow', { handler: slowly('slow') })
    const { client } = await setup([slow], { retries: { attempts: 2, perTryTimeout: '100ms' } })
    const t0 = performance.now()
    const err = await unary(client, { text: 'x' }).catch((e: grpc.ServiceError) => e)
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect((err as grpc.ServiceError).details).toMatch(/perTryTimeout of 100ms.*not retried/)
    expect(performance.now() - t0).toBeLessThan(350)
    expect(slow.calls).toBe(1)
  })
})

describe('a closed client', () => {
  /** One call answered, the client closed, then a call: it must fail UNAVAILABLE saying why, and leave nothing filed. */
  async function callAfterClose(service: Record<string, unknown>): Promise<Mesh> {
    const a = await backend('a')
    const { mesh, client } = await setup([a], service)
    expect((await unary(client, { text: 'x' })).from).toBe('a')
    client.close()
    const err = await unary(client, { text: 'x' }).catch((e: grpc.ServiceError) => e)
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE })
    expect((err as grpc.ServiceError).details).toMatch(/shut down/)
    expect(trackedCalls()).toBe(0)
    expect(a.calls).toBe(1)
    return mesh
  }

  it('fails a call with UNAVAILABLE, saying why, leaves nothing behind and does not count against the breaker', async () => {
    const mesh = await callAfterClose({})
    expect(mesh.inspect().destinations.echo!.breaker).toMatchObject({ failures: 0 })
  })

  it('fails a call delayed by a route the same way, without a breaker, instead of throwing from a timer', async () => {
    await callAfterClose({ breaker: false, routes: [{ fault: { delay: { fixed: '20ms', percent: 100 } } }] })
  })
})

describe('a backend SIGKILLed under load', () => {
  const script = fileURLToPath(new URL('./fixtures/grpc-backend.mjs', import.meta.url))
  async function child(name: string): Promise<{ proc: ChildProcess; url: string }> {
    const proc = spawn(process.execPath, [script, `--name=${name}`, '--delay=5'], { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanup.push(() => proc.kill('SIGKILL'))
    const port = await new Promise<string>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        const m = /port=(\d+)/.exec(d.toString())
        if (m) resolve(m[1]!)
      })
      proc.once('exit', () => reject(new Error(`${name} exited`)))
    })
    return { proc, url: `http://127.0.0.1:${port}` }
  }

  it('causes no failed calls, idempotent or not', async () => {
    const a = await child('a')
    const b = await child('b')
    const { client } = await setup([a, b], {}, ['/meshlet.test.Echo/Put'])
    let ok = 0
    let okAfterKill = 0
    let killed = false
    const failures: string[] = []
    const until = Date.now() + 1500
    setTimeout(() => {
      a.proc.kill('SIGKILL')
      killed = true
    }, 500)
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        while (Date.now() < until) {
          try {
            await unary(client, { text: 'x' }, { deadline: Date.now() + 3000 }, undefined, i % 2 ? 'Put' : 'Echo')
            ok++
            if (killed) okAfterKill++
          } catch (err) {
            failures.push(`${(err as grpc.ServiceError).code}: ${(err as Error).message}`)
          }
        }
      }),
    )
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(50)
    expect(okAfterKill).toBeGreaterThan(20)
  })
})

describe('deadlines and cancellation from the call scope', () => {
  it('a call made inside a call scope inherits its deadline, with no `parent`', async () => {
    let seen: { header: unknown; deadline: number } | undefined
    const a = await backend('a', {
      handler: (_req, call) => {
        seen = { header: call.metadata.get(DEADLINE_HEADER)[0], deadline: Number(call.getDeadline()) }
        return { from: 'a' }
      },
    })
    const { client } = await setup([a])
    const deadline = Date.now() + 2000
    await callScope.run({ deadline, signal: undefined }, () => unary(client, { text: 'x' }))
    // It travels as grpc-timeout alone, which is relative: the server's deadline drifts later by the transit time.
    expect(seen!.header).toBeUndefined()
    expect(Math.abs(seen!.deadline - deadline)).toBeLessThan(200)
  })

  it('the destination timeout applies when nothing shorter is set', async () => {
    const a = await backend('a', { handler: async () => (await new Promise((r) => setTimeout(r, 1000)), { from: 'a' }) })
    const { client } = await setup([a], { timeout: '150ms', retries: false })
    const t0 = Date.now()
    await expect(unary(client, { text: 'x' })).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect(Date.now() - t0).toBeLessThan(800)
  })

  it('a call with no time left fails without reaching the network', async () => {
    const a = await backend('a')
    const { client } = await setup([a])
    const err = await callScope.run({ deadline: Date.now() - 1, signal: undefined }, () => unary(client, { text: 'x' }).catch((e: grpc.ServiceError) => e))
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED })
    expect((err as Error).message).toMatch(/was not sent: its deadline passed/)
    expect(a.calls).toBe(0)
  })

  it('cancelling the inbound scope cancels the outbound call', async () => {
    let cancelled = false
    const a = await backend('a', {
      handler: (_req, call) =>
        new Promise((resolve) => {
          call.on('cancelled', () => {
            cancelled = true
            resolve({ from: 'a' })
          })
        }),
    })
    const { client } = await setup([a])
    const ac = new AbortController()
    const p = callScope.run({ deadline: Date.now() + 5000, signal: ac.signal }, () => unary(client, { text: 'x' }).catch((e: grpc.ServiceError) => e))
    await new Promise((r) => setTimeout(r, 100))
    ac.abort()
    expect(await p).toMatchObject({ code: grpc.status.CANCELLED })
    await new Promise((r) => setTimeout(r, 100))
    expect(cancelled).toBe(true)
  })
})

describe('breaker', () => {
  it('opens on failures and then fails fast without calling the backend', async () => {
    const a = await backend('a', { handler: failWith(grpc.status.INTERNAL) })
    const { mesh, client } = await setup([a], { retries: false, outlier: false, breaker: { volumeThreshold: 5, errorThreshold: 50, resetTimeout: '10s' } })
    for (let i = 0; i < 5; i++) await unary(client, { text: 'x' }).catch(() => undefined)
    expect(a.calls).toBe(5)
    const err = await unary(client, { text: 'x' }).catch((e: grpc.ServiceError) => e)
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE })
    expect((err as Error).message).toMatch(/Circuit breaker for "echo" is open/)
    expect(a.calls).toBe(5)
    expect(mesh.inspect().destinations.echo!.breaker!.state).toBe('open')
  })
})

describe('breaker and refusals', () => {
  it('a refusal before processing (meshlet-rejected) never counts against the breaker', async () => {
    const drainingMesh = await createMesh({ service: 'echo', shutdownSignals: false })
    cleanup.push(() => drainingMesh.close())
    const refusing = await backend('refusing', { mesh: drainingMesh })
    drainingMesh.inbound.stopAccepting()
    const { mesh, client } = await setup([refusing], { retries: false, outlier: false, breaker: { volumeThreshold: 3 } })
    for (let i = 0; i < 10; i++) await expect(unary(client, { text: 'x' })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/shutting down/) })
    expect(mesh.inspect().destinations.echo!.breaker).toMatchObject({ state: 'closed', fires: 10, failures: 0 })
  })
})

describe('per-call interceptors', () => {
  it('meshCallOptions keeps the mesh interceptors next to the call\'s own', async () => {
    const headers: string[] = []
    const a = await backend('a', {
      handler: (_req, call) => {
        // The mesh's interceptor gives every call the destination's 5 s timeout; without it there is none.
        headers.push((Number.isFinite(Number(call.getDeadline())) ? 'deadline' : 'none') + '|' + String(call.metadata.get('x-mine')[0] ?? 'none'))
        return { from: 'a' }
      },
    })
    const { mesh, client } = await setup([a], { timeout: '5s' })
    const mine: grpc.Interceptor = (options, next) =>
      new grpc.InterceptingCall(next(options), {
        start(metadata, listener, nextStart) {
          metadata.set('x-mine', '1')
          nextStart(metadata, listener)
        },
      })
    // grpc-js replaces the client's interceptors with a call's own: the mesh's would be dropped.
    await unary(client, { text: 'x' }, { interceptors: [mine] })
    await unary(client, { text: 'x' }, meshCallOptions(mesh, 'echo', { interceptors: [mine] }))
    expect(headers[0]).toBe('none|1')
    expect(headers[1]).toBe('deadline|1')
  })
})
