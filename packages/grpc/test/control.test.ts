/** meshlet:/// targets following a control endpoint: gRPC servers register with protocol grpc, clients follow them live. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it, vi } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { silentLogger, startControl } from '@meshlet/control'
import { bindGrpcServer, createGrpcServer, meshClientOptions, meshTarget, register } from '../src/index.js'
import { echoDefinition, EchoClientCtor, insecure, unary } from './fixtures/echo.js'

const ADMIN = 'admin-token-for-grpc-tests'
const JOIN = 'join-token-for-grpc-tests'

let cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function payments(control: string, name: string): Promise<Mesh> {
  const mesh = await createMesh({ service: 'payments', control, token: JOIN, shutdownSignals: false, drain: { delay: 0 } })
  const server = createGrpcServer(mesh)
  server.addService(echoDefinition, {
    Echo: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { from: name, text: call.request.text }),
    Put: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { from: name }),
    Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
  })
  await bindGrpcServer(mesh, server, '127.0.0.1:0', grpc.ServerCredentials.createInsecure())
  cleanup.push(() => mesh.close(), () => server.forceShutdown())
  return mesh
}

it('resolves registered gRPC instances and drops one that deregisters, with no failed call', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-grpc-control-'))
  const control = await startControl({ port: 0, dataDir: dir, adminToken: ADMIN, joinToken: JOIN, log: silentLogger })
  cleanup.push(() => rm(dir, { recursive: true, force: true }), () => control.close())
  const a = await payments(control.url, 'a')
  await payments(control.url, 'b')

  const res = await fetch(`${control.url}/v1/instances`, { headers: { authorization: `Bearer ${ADMIN}` } })
  expect(JSON.stringify(await res.json())).toContain('"grpc"')

  const web = await createMesh({ service: 'web', control: control.url, token: JOIN, shutdownSignals: false })
  const unregister = register(web)
  const client = new EchoClientCtor(meshTarget('payments'), insecure, meshClientOptions(web, 'payments'))
  cleanup.push(() => web.close(), unregister, () => client.close())

  await vi.waitFor(() => expect(web.destination('payments')?.balancer.size).toBe(2), { timeout: 5000 })
  const seen = new Set<string>()
  for (let i = 0; i < 30; i++) seen.add((await unary(client, { text: 'x' })).from)
  expect(seen).toEqual(new Set(['a', 'b']))

  // While calls keep going, a deregisters and drains; the client follows without a failure.
  let stop = false
  const failures: string[] = []
  const load = (async () => {
    while (!stop) await unary(client, { text: 'x' }).catch((e: Error) => failures.push(e.message))
  })()
  await a.close()
  await vi.waitFor(() => expect(web.inspect().destinations.payments!.endpoints).toHaveLength(1), { timeout: 5000 })
  stop = true
  await load
  expect(failures).toEqual([])
  for (let i = 0; i < 10; i++) expect((await unary(client, { text: 'x' })).from).toBe('b')
})
