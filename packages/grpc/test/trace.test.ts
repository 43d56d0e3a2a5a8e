/** Trace context across gRPC hops: the client injects it into metadata, the server extracts it for the handler. */
import { expect, it } from 'vitest'
import * as api from '@opentelemetry/api'
import { createMesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { installTracePropagation } from '../../http/test/fixtures/otel.js'
import { EchoClientCtor, insecure, startBackend, unary } from './fixtures/echo.js'

installTracePropagation()

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN_ID = '00f067aa0ba902b7'

it('carries traceparent client → server, and the handler runs in the extracted context', async () => {
  const serverMesh = await createMesh({ service: 'echo', shutdownSignals: false })
  let header: string | undefined
  let active: string | undefined
  const b = await startBackend('a', {
    mesh: serverMesh,
    handler: (_req, call) => {
      header = String(call.metadata.get('traceparent')[0])
      active = api.trace.getSpanContext(api.context.active())?.traceId
      return { from: 'a' }
    },
  })
  const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: [b.url] } } })
  const unregister = register(mesh)
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  try {
    const parent = api.trace.setSpanContext(api.context.active(), { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: api.TraceFlags.SAMPLED })
    await api.context.with(parent, () => unary(client, { text: 'x' }))
    expect(header).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`)
    expect(active).toBe(TRACE_ID)
    // Without an active span nothing is injected.
    await unary(client, { text: 'x' })
    expect(header).toBe('undefined')
  } finally {
    client.close()
    unregister()
    await mesh.close()
    await serverMesh.close()
    b.server.forceShutdown()
  }
})

