/**
 * payments: a grpc-js server built with `createGrpcServer(mesh)` (the mesh's server interceptors:
 * deadline, admission, load report, metrics, drain) and bound with `bindGrpcServer`, which registers
 * the instance with the control endpoint with protocol grpc. `shop.Payments/Charge` (payments.proto)
 * takes a few ms; an instance configured slow adds `slowMs`, and a flaky one fails `failRate` of its
 * calls, half with UNAVAILABLE (the processor refused: retried for any method) and half with
 * INTERNAL (failed part-way: retried only because orders marks Charge idempotent). Not a
 * connection-level failure, as the HTTP demo's resets were: grpc-js's server API gives a handler no
 * stream to reset, and dropping the connection would fail every call multiplexed on it.
 *
 * Each attempt is counted as it arrives, with whether orders' mesh sent it as a retry (the
 * `grpc-previous-rpc-attempts` metadata, as gRPC A6 marks retries): this is where they are seen one
 * by one.
 */
import { ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js'
import { createMesh } from '@meshlet/core'
import { bindGrpcServer, createGrpcServer } from '@meshlet/grpc'
import { runChild } from './demo-child.js'
import { paymentsService, type ChargeReply, type ChargeRequest } from './demo-payments-api.js'
import { ServedRecorder } from './demo-shared.js'

runChild(async ({ instance, control, token, slowMs = 0, failRate = 0 }) => {
  // Peers hear of the deregistration on close() through their watch within milliseconds on
  // loopback, so the drain delay (default 1 s with a control endpoint) can be short here.
  const mesh = await createMesh({ service: 'payments', control, token, drain: { delay: '250ms' } })
  const served = new ServedRecorder()

  const server = createGrpcServer(mesh)
  server.addService(paymentsService, {
    Charge(call: ServerUnaryCall<ChargeRequest, ChargeReply>, callback: sendUnaryData<ChargeReply>) {
      const done = served.arrived(Number(call.metadata.get('grpc-previous-rpc-attempts')[0] ?? 0) > 0)
      const { order, amount } = call.request
      setTimeout(
        () => {
          const roll = Math.random()
          if (roll < failRate / 2) {
            done('unavailable')
            callback({ code: status.UNAVAILABLE, details: 'payment processor unavailable; nothing charged' })
          } else if (roll < failRate) {
            done('internal')
            callback({ code: status.INTERNAL, details: 'charge failed part-way' })
          } else {
            done('ok')
            callback(null, { instance, order, amount, status: 'captured' })
          }
        },
        1 + Math.random() * 3 + slowMs,
      )
    },
  })
  const port = await bindGrpcServer(mesh, server, '127.0.0.1:0', ServerCredentials.createInsecure())
  return { mesh, port, served }
})
