import { describe, expect, it } from 'vitest'
import { callContext, stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeEnv } from '../client/testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response } from '../client/testing/fake-protocol.test-support.js'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { deadlineFilter } from './deadline-filter.js'

function setup(opts: Parameters<typeof fakeProtocol>[0] = {}) {
  const env = fakeEnv()
  const { protocol, handle, log } = fakeProtocol(opts)
  return { env, handle, log, call: stackOf([deadlineFilter(protocol, env)], protocol.endpoint) }
}

describe('deadlineFilter', () => {
  it('fails a call whose deadline has passed without calling next, and says it was not sent', async () => {
    const { env, handle, log, call } = setup()
    const ctx = callContext(env, { timeout: 100 })
    env.advance(150)
    const err = await call(fakeCall(), ctx).catch((e: unknown) => e)
    expect(isMeshletError(err, ErrorCodes.DEADLINE)).toBe(true)
    expect((err as Error).message).toMatch(/was not sent: its deadline passed/)
    expect((err as { details: unknown }).details).toMatchObject({ service: 'payments', sent: false, attempt: 1 })
    expect(handle.received).toHaveLength(0)
    expect(log.deadlines).toHaveLength(0)
  })

  it('counts a deadline equal to now as spent', async () => {
    const { env, handle, call } = setup()
    const ctx = callContext(env, { timeout: 0 })
    await expect(call(fakeCall(), ctx)).rejects.toMatchObject({ code: ErrorCodes.DEADLINE })
    expect(handle.received).toHaveLength(0)
  })

  it('writes the deadline once, the transport’s way, and passes the call and its answer through', async () => {
    const { env, handle, log, call } = setup()
    const ctx = callContext(env, { timeout: 1 })
    const req = fakeCall()
    const out = call(req, ctx)
    const r = await handle.next()
    expect(r.req).toBe(req)
    expect(r.ctx).toBe(ctx)
    expect(log.deadlines).toEqual([{ call: req, deadline: env.now() + 1 }])
    expect(req.headers['meshlet-deadline']).toBe(String(env.now() + 1))
    const res = response(200)
    r.respond(res)
    await expect(out).resolves.toBe(res)
  })

  it('writes nothing for a call without a deadline', async () => {
    const { env, handle, log, call } = setup()
    const out = call(fakeCall(), callContext(env, { timeout: Infinity }))
    ;(await handle.next()).respond(response(200))
    await out
    expect(log.deadlines).toHaveLength(0)
  })

  it('works with a transport that carries deadlines itself (no writeDeadline)', async () => {
    const { env, handle, call } = setup({ without: ['writeDeadline'] })
    const out = call(fakeCall(), callContext(env))
    ;(await handle.next()).respond(response(204))
    await expect(out).resolves.toMatchObject({ status: 204 })
  })

  it('passes errors from further in through unchanged', async () => {
    const { env, handle, call } = setup()
    const out = call(fakeCall(), callContext(env))
    const boom = new Error('boom')
    ;(await handle.next()).fail(boom)
    await expect(out).rejects.toBe(boom)
  })
})
