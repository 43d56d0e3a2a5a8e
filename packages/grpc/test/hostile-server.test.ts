/**
 * Hostile input at the gRPC server interceptors, over raw HTTP/2 on loopback (so the test can send
 * what grpc-js's client never would): malformed grpc-timeout, a megabyte of metadata, unknown
 * methods, junk in and around meshlet-deadline. Each is answered with a status or refused by the
 * transport; none reaches the handler with a broken deadline, and the server keeps serving with
 * nothing left in flight.
 */
import { connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { callScope, createMesh, DEADLINE_HEADER, type Mesh } from '@meshlet/core'
import { startBackend, type Backend } from './fixtures/echo.js'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

interface RawAnswer {
  /** grpc-status from the trailers (or trailers-only headers); undefined when the stream was reset. */
  grpcStatus: number | undefined
  message: string | undefined
  reset: string | undefined
}

/** One unary call as raw HTTP/2 frames: a gRPC message holding `body` as JSON. */
function rawCall(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders, body: unknown = { text: 'x' }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const payload = Buffer.from(JSON.stringify(body))
    const frame = Buffer.concat([Buffer.from([0, (payload.length >>> 24) & 255, (payload.length >>> 16) & 255, (payload.length >>> 8) & 255, payload.length & 255]), payload])
    let stream
    try {
      stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers })
    } catch (err) {
      return resolve({ grpcStatus: undefined, message: undefined, reset: `refused by the client: ${(err as Error).message}` })
    }
    let status: number | undefined
    let message: string | undefined
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) status = Number(h['grpc-status'])
      if (h['grpc-message'] !== undefined) message = String(h['grpc-message'])
    }
    stream.on('response', take)
    stream.on('trailers', take)
    stream.on('data', () => undefined)
    stream.on('error', () => undefined)
    stream.on('close', () => resolve({ grpcStatus: status, message, reset: status === undefined ? `stream closed with code ${stream.rstCode}` : undefined }))
    stream.end(frame)
  })
}

async function setup(): Promise<{ mesh: Mesh; backend: Backend; session: () => ClientHttp2Session; deadlines: number[] }> {
  const mesh = await createMesh({ service: 'echo', shutdownSignals: false })
  cleanup.push(() => mesh.close())
  const deadlines: number[] = []
  const backend = await startBackend('a', { mesh, handler: () => (deadlines.push(callScope.getStore()?.deadline ?? NaN), { text: 'ok', from: 'a' }) })
  cleanup.push(() => backend.server.forceShutdown())
  // A fresh session when the server closed the last one (a refused header block may end it).
  let current: ClientHttp2Session | undefined
  const session = () => {
    if (current === undefined || current.closed || current.destroyed) {
      current = connect(`http://127.0.0.1:${backend.port}`)
      current.on('error', () => undefined)
      const s = current
      cleanup.push(() => s.destroy())
    }
    return current
  }
  return { mesh, backend, session, deadlines }
}

/** Every handler run saw a real deadline: a time to come, or none (Infinity); never NaN. */
function expectSaneDeadlines(deadlines: number[]): void {
  for (const d of deadlines) expect(d === Infinity || (Number.isFinite(d) && d > Date.now() - 60_000)).toBe(true)
}

async function expectStillServing(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const ok = await rawCall(s.session(), '/meshlet.test.Echo/Echo', {})
  expect(ok.grpcStatus).toBe(grpc.status.OK)
  expect(s.mesh.inbound.inflight).toBe(0)
}

describe('gRPC server interceptors under hostile input', () => {
  it('answers every malformed grpc-timeout with a status, and never hands the handler a NaN deadline', async () => {
    const s = await setup()
    const bad = ['', 'x', '1', '1X', '-1S', '999999999S', '1.5S', '1 S', 'S', '0n', '00000000H', '99999999H', '1m1m', 'Infinity', 'NaNS']
    for (const value of bad) {
      const answer = await rawCall(s.session(), '/meshlet.test.Echo/Echo', { 'grpc-timeout': value })
      expect(answer.grpcStatus ?? answer.reset, `grpc-timeout ${JSON.stringify(value)}`).toBeDefined()
    }
    expectSaneDeadlines(s.deadlines)
    await expectStillServing(s)
  })

  it('refuses a megabyte of metadata, as one value or as many headers, before the handler runs', async () => {
    const s = await setup()
    const one = await rawCall(s.session(), '/meshlet.test.Echo/Echo', { 'x-big': 'a'.repeat(1024 * 1024) })
    const many: OutgoingHttpHeaders = {}
    for (let i = 0; i < 1024; i++) many[`x-h${i}`] = 'b'.repeat(1024)
    const split = await rawCall(s.session(), '/meshlet.test.Echo/Echo', many)
    for (const answer of [one, split]) expect(answer.grpcStatus === undefined ? answer.reset : answer.grpcStatus).not.toBe(grpc.status.OK)
    expect(s.backend.calls).toBe(0)
    await expectStillServing(s)
  })

  it('answers unknown methods UNIMPLEMENTED and leaves nothing in flight', async () => {
    const s = await setup()
    for (const path of ['/meshlet.test.Echo/Nope', '/nope', '/', '/meshlet.test.Echo/', `/${'x'.repeat(10_000)}`, '/%00/%ff']) {
      const answer = await rawCall(s.session(), path, {})
      expect(answer.grpcStatus, path.slice(0, 40)).toBe(grpc.status.UNIMPLEMENTED)
    }
    expect(s.backend.calls).toBe(0)
    await expectStillServing(s)
  })

  it('refuses junk in meshlet-deadline, and two of them (HTTP/2 joins them into one value), INVALID_ARGUMENT; ignores look-alike keys', async () => {
    const s = await setup()
    const later = String(Date.now() + 30_000)
    const cases: [OutgoingHttpHeaders, number][] = [
      [{ [DEADLINE_HEADER]: [later, later] }, grpc.status.INVALID_ARGUMENT],
      [{ [DEADLINE_HEADER]: ['junk', later] }, grpc.status.INVALID_ARGUMENT],
      [{ [DEADLINE_HEADER]: '' }, grpc.status.INVALID_ARGUMENT],
      [{ [DEADLINE_HEADER]: '0x10' }, grpc.status.INVALID_ARGUMENT],
      [{ [DEADLINE_HEADER]: '9'.repeat(15) }, grpc.status.OK],
      [{ [`${DEADLINE_HEADER}-bin`]: Buffer.from('junk').toString('base64') }, grpc.status.OK],
      [{ 'meshlet-deadlinex': 'junk', 'x-meshlet-deadline': 'junk' }, grpc.status.OK],
    ]
    for (const [headers, status] of cases) {
      const answer = await rawCall(s.session(), '/meshlet.test.Echo/Echo', headers)
      expect(answer.grpcStatus, JSON.stringify(headers)).toBe(status)
      if (status === grpc.status.INVALID_ARGUMENT) expect(answer.message).toMatch(/meshlet-deadline%20must%20be%20an%20absolute%20time|meshlet-deadline must be an absolute time/)
    }
    expectSaneDeadlines(s.deadlines)
    // The fifteen 9s are clamped to a day ahead: a peer cannot pin work forever.
    expect(Math.max(...s.deadlines.filter(Number.isFinite))).toBeLessThanOrEqual(Date.now() + 24 * 3_600_000)
    await expectStillServing(s)
  })
})

