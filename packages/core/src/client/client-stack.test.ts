import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Destination } from '../destination.js'
import { RouteTable } from '../routing/route-table.js'
import type { CallContext, Filter } from './call-context.js'
import { ClientRoles, ClientStack, defaultClientRoles, type ClientRole, type ClientStackParams } from './client-stack.js'
import { BREAKER, callContext, policy, RETRIES, testDestination } from './testing/call-fixtures.test-support.js'
import { fakeEnv } from './testing/fake-env.test-support.js'
import { fakeCall, fakeProtocol, response, type FakeCall, type FakeResponse } from './testing/fake-protocol.test-support.js'

const open: Destination[] = []
afterEach(async () => {
  for (const d of open.splice(0)) await d.close()
})

const ALL = ['metrics', 'route', 'deadline', 'trace', 'mirror', 'retry', 'breaker', 'pick', 'per-try-timeout']
const everything = () => policy({ retries: { ...RETRIES, backoffBase: 0, backoffMax: 0 }, breaker: BREAKER })
const routes = new RouteTable([{ service: 'payments', rules: [{ timeout: 5000 }] }], 'test')

function destination(opts: Parameters<typeof testDestination>[0] = {}) {
  const env = fakeEnv({ fallback: 0 }) // jitter 0: backoffs are the base, doubled
  const d = testDestination({ env, ...opts })
  open.push(d)
  return { env, d }
}

/** A role whose filter records each call it sees (attempt and all), then calls next. */
function spyRole(name: string) {
  const seen: number[] = []
  const role: ClientRole = {
    role: name,
    make: () =>
      ((req: FakeCall, ctx: CallContext, next: (r: FakeCall, c: CallContext) => Promise<FakeResponse>) => {
        seen.push(ctx.attempt)
        return next(req, ctx)
      }) as unknown as Filter<unknown, unknown>,
  }
  return { role, seen }
}

describe('ClientStack', () => {
  it('lists the default roles outermost first, metrics to per-try timeout', () => {
    expect(new ClientStack().roles()).toEqual(ALL)
    expect(Object.values(ClientRoles)).toEqual(ALL)
    expect(defaultClientRoles().map((r) => r.role)).toEqual(ALL)
  })

  it('builds every role for a destination with retries, a breaker and routes', async () => {
    const { d } = destination({ policy: everything() })
    await d.ready
    d.updateRoutes(routes)
    expect(d.entries(fakeProtocol().protocol).map((e) => e.role)).toEqual(ALL)
  })

  it('leaves out the roles with nothing to do: no routes, no retries, no breaker', () => {
    const { d } = destination({ policy: policy({ retries: false, breaker: false }) })
    expect(d.entries(fakeProtocol().protocol).map((e) => e.role)).toEqual(['metrics', 'deadline', 'trace', 'pick'])
  })

  it('leaves out route and mirror for a transport that cannot route or mirror', () => {
    const { d } = destination({ policy: everything() })
    d.updateRoutes(routes)
    const roles = d.entries(fakeProtocol({ without: ['requestInfo', 'mirror'] }).protocol).map((e) => e.role)
    expect(roles).toEqual(['metrics', 'deadline', 'trace', 'retry', 'breaker', 'pick', 'per-try-timeout'])
  })

  it('hands each role the destination’s state, policy, transport and clock', () => {
    const make = vi.fn((_p: ClientStackParams) => undefined)
    const stack = new ClientStack().insertBefore('metrics', { role: 'probe', make })
    const { env, d } = destination({ policy: everything(), clientStack: stack })
    const { protocol } = fakeProtocol()
    d.entries(protocol)
    expect(make).toHaveBeenCalledWith(expect.objectContaining({ service: 'payments', policy: d.policy, balancer: d.balancer, budget: d.budget, breaker: d.breaker, protocol, env }))
  })

  describe('a change rebuilds the destination’s cached stack', () => {
    it('keeps the cached composition while nothing changes', () => {
      const { d } = destination()
      const { protocol } = fakeProtocol()
      expect(d.stack(protocol)).toBe(d.stack(protocol))
    })

    it('a role inserted before retry sees the next call once; one inserted after it sees every attempt', async () => {
      const clientStack = new ClientStack()
      const { d } = destination({ policy: everything(), clientStack })
      await d.ready
      const { protocol, handle } = fakeProtocol()
      const before = d.stack(protocol)
      const outer = spyRole('outer')
      const inner = spyRole('inner')
      clientStack.insertBefore('retry', outer.role).insertAfter('retry', inner.role)
      const after = d.stack(protocol)
      expect(after).not.toBe(before)
      expect(d.entries(protocol).map((e) => e.role)).toEqual(['metrics', 'deadline', 'trace', 'outer', 'retry', 'inner', 'breaker', 'pick', 'per-try-timeout'])
      handle.answerWith((_r, _c, n) => response(n < 3 ? 503 : 200))
      await expect(after(fakeCall(), d.newContext(true))).resolves.toMatchObject({ status: 200 })
      expect(outer.seen).toEqual([1])
      expect(inner.seen).toEqual([1, 2, 3])
    })

    it('a replaced role runs instead of the built-in one', async () => {
      const clientStack = new ClientStack()
      const { d } = destination({ policy: everything(), clientStack })
      await d.ready
      const { protocol, handle } = fakeProtocol()
      d.stack(protocol)
      const mine = spyRole('retry')
      clientStack.replace('retry', mine.role)
      handle.answerWith(() => response(503))
      await expect(d.stack(protocol)(fakeCall(), d.newContext(true))).resolves.toMatchObject({ status: 503 })
      expect(mine.seen).toEqual([1])
      expect(handle.received).toHaveLength(1) // the built-in retry would have sent three
    })

    it('a removed role no longer runs: without deadline, a spent call reaches the transport', async () => {
      const clientStack = new ClientStack()
      const { env, d } = destination({ clientStack })
      await d.ready
      const { protocol, handle } = fakeProtocol()
      const spent = () => {
        const ctx = callContext(env, { timeout: 0 })
        return d.stack(protocol)(fakeCall(), ctx)
      }
      await expect(spent()).rejects.toMatchObject({ code: 'MESHLET_ERR_DEADLINE' })
      clientStack.remove('deadline')
      handle.answerWith(() => response(200))
      await expect(spent()).resolves.toMatchObject({ status: 200 })
    })
  })
})
