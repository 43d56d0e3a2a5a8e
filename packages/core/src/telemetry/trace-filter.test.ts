import { AsyncLocalStorage } from 'node:async_hooks'
import * as api from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newCallContext } from '../client/call-context.js'
import { stackOf } from '../client/testing/call-fixtures.test-support.js'
import { fakeCall, fakeProtocol, response, type FakeCall, type FakeResponse } from '../client/testing/fake-protocol.test-support.js'
import { traceFilter } from './trace-filter.js'

// core has no @opentelemetry/core or context-async-hooks: a W3C traceparent propagator and an
// AsyncLocalStorage context manager, as small as the test needs.
const w3c: api.TextMapPropagator = {
  inject(context, carrier, setter) {
    const sc = api.trace.getSpanContext(context)
    if (sc === undefined || !api.isSpanContextValid(sc)) return
    setter.set(carrier, 'traceparent', `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags}`)
  },
  extract: (context) => context,
  fields: () => ['traceparent'],
}
const als = new AsyncLocalStorage<api.Context>()
const contextManager: api.ContextManager = {
  active: () => als.getStore() ?? api.ROOT_CONTEXT,
  with: (context, fn, thisArg, ...args) => als.run(context, () => fn.call(thisArg, ...args)),
  bind: (_context, target) => target,
  enable() {
    return this
  },
  disable() {
    return this
  },
}

beforeAll(() => {
  api.context.setGlobalContextManager(contextManager)
  api.propagation.setGlobalPropagator(w3c)
})
afterAll(() => {
  api.propagation.disable()
  api.context.disable()
})

const span = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: api.TraceFlags.SAMPLED }

describe('traceFilter', () => {
  it('writes the active trace context through protocol.setHeader before calling next', async () => {
    const { protocol, handle, log } = fakeProtocol()
    const filter = traceFilter<FakeCall, FakeResponse>(protocol)
    expect(filter).toBeDefined()
    const req = fakeCall()
    const out = api.context.with(api.trace.setSpanContext(api.ROOT_CONTEXT, span), () => stackOf([filter], protocol.endpoint)(req, newCallContext('payments', Infinity, undefined, true)))
    const r = await handle.next()
    expect(log.headers).toEqual([{ call: req, name: 'traceparent', value: `00-${span.traceId}-${span.spanId}-01` }])
    expect(r.req.headers.traceparent).toBe(`00-${span.traceId}-${span.spanId}-01`)
    const res = response(200)
    r.respond(res)
    await expect(out).resolves.toBe(res)
  })

  it('writes nothing outside a trace', async () => {
    const { protocol, handle, log } = fakeProtocol()
    const out = stackOf([traceFilter<FakeCall, FakeResponse>(protocol)], protocol.endpoint)(fakeCall(), newCallContext('payments', Infinity, undefined, true))
    ;(await handle.next()).respond(response(200))
    await out
    expect(log.headers).toHaveLength(0)
  })
})
