/**
 * The server of the gRPC bench, run as its own process: `node grpc-server.js` serves the echo
 * service on two free ports of 127.0.0.1, one a plain grpc-js server, one through meshlet (the
 * mesh's server interceptors: deadline and trace scope, admission, load report, metrics, with a
 * real OpenTelemetry SDK meter provider). Sends `{ ports: [plain, meshed] }` to the parent over IPC
 * (or prints it as a JSON line without IPC), and exits when the parent goes.
 */
import * as grpc from '@grpc/grpc-js'
import { metrics } from '@opentelemetry/api'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { createMesh } from '@meshlet/core'
import { bindGrpcServer, createGrpcServer } from '@meshlet/grpc'
import { echoService, STREAM_BYTES, STREAM_MESSAGES } from './grpc-service.js'

metrics.setGlobalMeterProvider(
  new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 60_000 })] }),
)

const CHUNK = Buffer.alloc(STREAM_BYTES, 'x')
const handlers: grpc.UntypedServiceImplementation = {
  Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
  Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    for (let i = 0; i < STREAM_MESSAGES; i++) call.write(CHUNK)
    call.end()
  },
}
const insecure = grpc.ServerCredentials.createInsecure()

const plain = new grpc.Server()
plain.addService(echoService, handlers)
const plainPort = await new Promise<number>((resolve, reject) => plain.bindAsync('127.0.0.1:0', insecure, (err, port) => (err ? reject(err) : resolve(port))))

// Admission on with limits this load never reaches: the gate's bookkeeping runs on every call.
const mesh = await createMesh({ service: 'echo', shutdownSignals: false, admission: { concurrency: { limit: 10_000 }, shedding: { eventLoopDelay: '1s' } } })
const meshed = createGrpcServer(mesh)
meshed.addService(echoService, handlers)
const meshedPort = await bindGrpcServer(mesh, meshed, '127.0.0.1:0', insecure)

const ready = { ports: [plainPort, meshedPort] }
if (process.send) {
  process.send(ready)
  process.on('disconnect', () => process.exit(0))
} else {
  console.log(JSON.stringify(ready))
}
