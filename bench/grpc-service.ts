/**
 * The echo service of the gRPC bench, shared by its server (bench/grpc-server.ts) and client
 * (bench/grpc.ts): raw bytes on the wire (no codec cost, so the mesh's own cost stands out).
 *   Echo   unary: answers with the request's bytes
 *   Stream server streaming: answers any request with STREAM_MESSAGES messages of STREAM_BYTES bytes
 */
import * as grpc from '@grpc/grpc-js'

export const STREAM_MESSAGES = 100
export const STREAM_BYTES = 1024

const bytes = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b }
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: bytes.serialize,
  requestDeserialize: bytes.deserialize,
  responseSerialize: bytes.serialize,
  responseDeserialize: bytes.deserialize,
})

export const echoService = {
  Echo: method('/meshlet.bench.Echo/Echo', false),
  Stream: method('/meshlet.bench.Echo/Stream', true),
} satisfies grpc.ServiceDefinition

export type EchoClient = grpc.Client & {
  Echo(req: Buffer, cb: grpc.requestCallback<Buffer>): grpc.ClientUnaryCall
  Echo(req: Buffer, options: grpc.CallOptions, cb: grpc.requestCallback<Buffer>): grpc.ClientUnaryCall
  Stream(req: Buffer): grpc.ClientReadableStream<Buffer>
}
export const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo') as unknown as new (target: string, creds: grpc.ChannelCredentials, options?: grpc.ClientOptions) => EchoClient
