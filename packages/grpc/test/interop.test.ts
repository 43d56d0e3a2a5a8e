/**
 * The gRPC interop test cases with both ends through meshlet: a meshlet:/// client with the mesh's
 * interceptors, against a server built by createGrpcServer (the mesh's server interceptors).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { createGrpcServer, meshClientOptions, meshTarget, register } from '../src/index.js'
import { interopCases, TestService, testServiceImpl, UnimplementedService } from './fixtures/interop.js'

let serverMesh: Mesh
let clientMesh: Mesh
let server: grpc.Server
let client: grpc.Client
let unimplemented: grpc.Client
let unregister: () => void

beforeAll(async () => {
  serverMesh = await createMesh({ service: 'interop', shutdownSignals: false })
  server = createGrpcServer(serverMesh)
  server.addService(TestService.service, testServiceImpl)
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
  clientMesh = await createMesh({ service: 'interop-client', shutdownSignals: false, services: { interop: { endpoints: [`http://127.0.0.1:${port}`] } } })
  unregister = register(clientMesh)
  const options = meshClientOptions(clientMesh, 'interop')
  client = new TestService(meshTarget('interop'), grpc.credentials.createInsecure(), options)
  unimplemented = new UnimplementedService(meshTarget('interop'), grpc.credentials.createInsecure(), options)
})

afterAll(async () => {
  client.close()
  unimplemented.close()
  unregister()
  await clientMesh.close()
  await serverMesh.close()
})

// Every case leaves nothing running on the server (a cancelled call included), so a drain is quick.
afterEach(async () => {
  for (let i = 0; i < 50 && serverMesh.inbound.inflight > 0; i++) await new Promise((r) => setTimeout(r, 10))
  expect(serverMesh.inbound.inflight).toBe(0)
})

describe('gRPC interop cases through meshlet', () => {
  for (const [name, run] of Object.entries(interopCases)) {
    it(name, () => run(client as never, unimplemented as never))
  }
})
