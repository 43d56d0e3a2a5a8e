/**
 * Trace context through a hop: with the W3C propagator and a context manager registered (what an
 * app's OTel SDK sets up), a `traceparent` received by hop A is on hop B's request when A calls B
 * through its mesh agent, with no tracing code in A's handler. meshlet makes no spans, so the
 * parent span id passes through unchanged.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from 'undici'
import { meshAgent } from '@meshlet/http'
import { ADAPTERS, meshFor, serve, Teardown, type AdapterName } from './fixtures/server-harness.js'
import { installTracePropagation } from './fixtures/otel.js'

installTracePropagation()

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN_ID = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`

describe.each(ADAPTERS.map((a, i) => [a, ADAPTERS[(i + 1) % ADAPTERS.length]!] as const))(
  'traceparent: client → %s → %s',
  (adapterA: AdapterName, adapterB: AdapterName) => {
    const t = new Teardown()
    afterEach(() => t.run())

    async function hops() {
      const seenAtB: Record<string, string | undefined>[] = []
      const meshB = await meshFor(t, { service: 'b' })
      const B = await serve(adapterB, meshB, [
        {
          method: 'GET',
          path: '/leaf',
          handler: ({ headers }) => {
            seenAtB.push({ traceparent: headers.traceparent as string | undefined, tracestate: headers.tracestate as string | undefined, deadline: headers['meshlet-deadline'] as string | undefined })
            return { body: {} }
          },
        },
      ])
      t.add(() => B.close())
      const meshA = await meshFor(t, { service: 'a', services: { b: { endpoints: [B.origin], retries: false } } })
      const agentA = meshAgent(meshA)
      t.add(() => agentA.close())
      const A = await serve(adapterA, meshA, [
        {
          method: 'GET',
          path: '/front',
          handler: async () => {
            const res = await agentA.request({ origin: 'http://b', path: '/leaf', method: 'GET' })
            await res.body.dump()
            return { status: res.statusCode, body: {} }
          },
        },
      ])
      t.add(() => A.close())
      const client = new Client(A.origin)
      t.add(() => client.destroy())
      const get = async (headers: Record<string, string>) => {
        const res = await client.request({ method: 'GET', path: '/front', headers })
        await res.body.dump()
        expect(res.statusCode).toBe(200)
      }
      return { get, seenAtB, agentA }
    }

    it('forwards the trace id (and tracestate) received by hop A to hop B', async () => {
      const { get, seenAtB } = await hops()
      await get({ traceparent: TRACEPARENT, tracestate: 'shop=orders,x=1' })
      expect(seenAtB).toHaveLength(1)
      const tp = seenAtB[0]!.traceparent
      expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      expect(tp!.split('-')[1]).toBe(TRACE_ID)
      expect(tp).toBe(TRACEPARENT)
      expect(seenAtB[0]!.tracestate).toBe('shop=orders,x=1')
      // The deadline from A's destination timeout travels alongside.
      expect(Number(seenAtB[0]!.deadline)).toBeGreaterThan(Date.now())
    })

    it('keeps concurrent requests apart: each outbound call carries its own inbound trace', async () => {
      const { get, seenAtB } = await hops()
      const ids = ['0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331b7ad6b7169203331', '5b8aa5a2d2c872e8321cf37308d69df2']
      await Promise.all(ids.map((id) => get({ traceparent: `00-${id}-${SPAN_ID}-01` })))
      expect(seenAtB.map((s) => s.traceparent!.split('-')[1]).sort()).toEqual([...ids].sort())
    })

    it('sends no traceparent when hop A received none, or a malformed one', async () => {
      const { get, seenAtB } = await hops()
      await get({})
      await get({ traceparent: 'not-a-traceparent' })
      await get({ traceparent: `00-${'0'.repeat(32)}-${SPAN_ID}-01` }) // all-zero trace id is invalid
      expect(seenAtB.map((s) => s.traceparent)).toEqual([undefined, undefined, undefined])
    })
  },
)
