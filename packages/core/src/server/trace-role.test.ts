import { afterEach, describe, expect, it } from 'vitest'
import { context, createContextKey, propagation, ROOT_CONTEXT, type Context, type ContextManager, type TextMapGetter, type TextMapPropagator } from '@opentelemetry/api'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import type { CallResumer } from './server-role.js'
import { traceRole } from './trace-role.js'

const SEEN = createContextKey('seen')
const stack = {} as CallResumer

/** A propagator that puts what it read through the getter into the context it returns. */
const recording: TextMapPropagator = {
  inject() {},
  extract(ctx: Context, carrier: unknown, getter: TextMapGetter) {
    return ctx.setValue(SEEN, { keys: getter.keys(carrier), traceparent: getter.get(carrier, 'traceparent') })
  },
  fields: () => ['traceparent'],
}

/** A synchronous context manager: enough to see which context code runs in. */
function stackContextManager(): ContextManager {
  let active = ROOT_CONTEXT
  const m: ContextManager = {
    active: () => active,
    with(ctx, fn, thisArg, ...args) {
      const before = active
      active = ctx
      try {
        return fn.call(thisArg, ...args)
      } finally {
        active = before
      }
    },
    bind: (_ctx, target) => target,
    enable: () => m,
    disable: () => m,
  }
  return m
}

afterEach(() => {
  propagation.disable()
  context.disable()
})

describe('trace role', () => {
  it("extracts the trace context through the call's own header reader, and the app runs in it", () => {
    propagation.setGlobalPropagator(recording)
    context.setGlobalContextManager(stackContextManager())
    const call = new FakeCall({ headers: { traceparent: '00-abc-def-01', 'x-other': '1' } })
    expect(traceRole().arrive(call, stack)).toBeUndefined()
    expect(call.trace?.getValue(SEEN)).toEqual({ keys: ['traceparent', 'x-other'], traceparent: '00-abc-def-01' })
    let active: unknown
    call.runInScope(() => (active = context.active().getValue(SEEN)))
    expect(active).toEqual({ keys: ['traceparent', 'x-other'], traceparent: '00-abc-def-01' })
    expect(context.active().getValue(SEEN)).toBeUndefined()
  })
})
