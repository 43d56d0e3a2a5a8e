/** rpc.client.call.duration and rpc.server.call.duration through a real OpenTelemetry SDK. */
import { expect, it } from 'vitest'
import type { DataPoint } from '@opentelemetry/sdk-metrics'
import * as grpc from '@grpc/grpc-js'
import { createMesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '../src/index.js'
import { installDeltaMetrics } from '../../http/test/fixtures/otel.js'
import { EchoClientCtor, insecure, startBackend, unary } from './fixtures/echo.js'

const reader = installDeltaMetrics()

it('records client and server call durations with RPC semantic-convention attributes', async () => {
  const serverMesh = await createMesh({ service: 'echo', shutdownSignals: false })
  const b = await startBackend('a', { mesh: serverMesh })
  const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: [b.url], retries: false } } })
  const unregister = register(mesh)
  const client = new EchoClientCtor(meshTarget('echo'), insecure, meshClientOptions(mesh, 'echo'))
  try {
    await unary(client, { text: 'x' })
    await unary(client, { text: 'x', fail: grpc.status.NOT_FOUND }).catch(() => undefined)
    const { resourceMetrics } = await reader.collect()
    const points = (name: string) =>
      resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .filter((m) => m.descriptor.name === name)
        .flatMap((m) => m.dataPoints as DataPoint<{ count: number }>[])
    const client_ = points('rpc.client.call.duration')
    const server = points('rpc.server.call.duration')
    expect(client_.map((p) => p.attributes)).toEqual(
      expect.arrayContaining([
        { 'rpc.system': 'grpc', 'rpc.service': 'meshlet.test.Echo', 'rpc.method': 'Echo', 'rpc.grpc.status_code': 0, 'server.address': 'echo' },
        { 'rpc.system': 'grpc', 'rpc.service': 'meshlet.test.Echo', 'rpc.method': 'Echo', 'rpc.grpc.status_code': 5, 'server.address': 'echo', 'error.type': 'NOT_FOUND' },
      ]),
    )
    expect(server.map((p) => p.attributes)).toEqual(
      expect.arrayContaining([
        { 'rpc.system': 'grpc', 'rpc.service': 'meshlet.test.Echo', 'rpc.method': 'Echo', 'rpc.grpc.status_code': 0 },
        { 'rpc.system': 'grpc', 'rpc.service': 'meshlet.test.Echo', 'rpc.method': 'Echo', 'rpc.grpc.status_code': 5, 'error.type': 'NOT_FOUND' },
      ]),
    )
    expect(client_.every((p) => p.value.count === 1)).toBe(true)
  } finally {
    client.close()
    unregister()
    await mesh.close()
    await serverMesh.close()
  }
})
