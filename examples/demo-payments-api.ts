/**
 * The payments gRPC service of the demo, loaded from payments.proto with @grpc/proto-loader: the
 * service definition payments serves and the client constructor orders calls it with.
 */
import { join } from 'node:path'
import { loadPackageDefinition, type ChannelCredentials, type Client, type ClientOptions, type ClientUnaryCall, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'

export interface ChargeRequest {
  order: string
  amount: number
  idempotency_key: string
}

export interface ChargeReply {
  instance: string
  order: string
  amount: number
  status: string
}

/** The method path, as `register(mesh, { idempotent })` and the metrics name it. */
export const CHARGE = '/shop.Payments/Charge'

// This module runs from examples/dist/, and tsc does not copy the .proto there: it stays beside the sources.
const definition = loadSync(join(import.meta.dirname, '..', 'payments.proto'), {
  keepCase: true,
  longs: Number,
  defaults: true,
})
const loaded = loadPackageDefinition(definition) as unknown as { shop: { Payments: ServiceClientConstructor } }

export type PaymentsClient = Client & {
  Charge(request: ChargeRequest, callback: (err: ServiceError | null, reply?: ChargeReply) => void): ClientUnaryCall
}

/** The service definition payments serves. */
export const paymentsService = loaded.shop.Payments.service
/** The client constructor orders calls it with. */
export const PaymentsClient = loaded.shop.Payments as unknown as new (target: string, credentials: ChannelCredentials, options?: ClientOptions) => PaymentsClient
