// A runnable @meshlet/grpc example: two echo servers and a client balancing over them through
// meshlet:///echo. Run after `pnpm build`:  node packages/grpc/examples/echo.mjs
// The service is JSON-encoded so that no .proto is needed; a proto-loader service works the same.
import * as grpc from '@grpc/grpc-js'
import { callScope, createMesh } from '@meshlet/core'
import { bindGrpcServer, createGrpcServer, meshClientOptions, meshTarget, register } from '@meshlet/grpc'

const json = { serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(b.toString()) }
const Echo = {
  Say: { path: '/example.Echo/Say', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
}

// Two instances of the `echo` service, each with the mesh's server interceptors.
const servers = []
const ports = []
for (const name of ['echo-1', 'echo-2']) {
  const mesh = await createMesh({ service: 'echo', shutdownSignals: false })
  const server = createGrpcServer(mesh)
  server.addService(Echo, {
    // The handler runs in the call scope: the caller's deadline is visible (and inherited by calls it makes).
    Say: (call, cb) => cb(null, { text: call.request.text, from: name, msLeft: callScope.getStore().deadline - Date.now() }),
  })
  ports.push(await bindGrpcServer(mesh, server, '127.0.0.1:0', grpc.ServerCredentials.createInsecure()))
  servers.push(mesh)
}

// The client mesh knows `echo` by its endpoints; meshlet:///echo balances over them.
const mesh = await createMesh({ service: 'web', shutdownSignals: false, services: { echo: { endpoints: ports.map((p) => `http://127.0.0.1:${p}`), timeout: '1s' } } })
const unregister = register(mesh, { idempotent: ['example.Echo'] })
const Client = grpc.makeGenericClientConstructor(Echo, 'Echo')
const client = new Client(meshTarget('echo'), grpc.credentials.createInsecure(), meshClientOptions(mesh, 'echo'))

for (let i = 0; i < 6; i++) {
  const reply = await new Promise((resolve, reject) => client.Say({ text: `hello ${i}` }, (err, res) => (err ? reject(err) : resolve(res))))
  process.stdout.write(`${JSON.stringify(reply)}\n`)
}
process.stdout.write(`${JSON.stringify(mesh.inspect().destinations.echo.endpoints.map((e) => ({ url: e.url, requests: e.requests, latencyMs: e.latencyMs })))}\n`)

client.close()
unregister()
await mesh.close()
await Promise.all(servers.map((m) => m.close()))
