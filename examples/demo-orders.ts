/**
 * orders: Express with the `meshlet(mesh)` middleware. `PUT /orders/:id` charges the order with
 * `shop.Payments/Charge` through a grpc-js client on `meshlet:///payments` (`register(mesh)` and
 * `meshClientOptions(mesh, 'payments')`): the mesh's LB policy balances each attempt over the
 * payments instances and ejects outliers, grpc-js retries by the service config the mesh generates
 * from the policy (Charge is marked idempotent: it carries an idempotency key), and the interceptor
 * passes on the inherited deadline and measures. The instances of payments and the policy for
 * calling them (balancer, retries, timeouts, ejection) come from the control endpoint: the
 * `ServicePolicy` named payments, which the demo changes with `meshlet apply` while it runs.
 * Each paid order is published as a `shop.order.created` CloudEvent with `events(mesh).publish`.
 */
import type { AddressInfo } from 'node:net'
import express from 'express'
import { credentials, status, type ServiceError } from '@grpc/grpc-js'
import { createMesh } from '@meshlet/core'
import { meshlet } from '@meshlet/http/express'
import { meshClientOptions, meshTarget, register } from '@meshlet/grpc'
import { events } from '@meshlet/events'
import { runChild } from './demo-child.js'
import { CHARGE, PaymentsClient, type ChargeReply } from './demo-payments-api.js'
import { EdgeRecorder } from './demo-shared.js'

runChild(async ({ control, token }) => {
  // No endpoints and no policy here: both follow the control endpoint live. drain.delay: see demo-payments.ts.
  const mesh = await createMesh({ service: 'orders', control, token, drain: { delay: '250ms' } })
  const unregister = register(mesh, { idempotent: [CHARGE] })
  const payments = new PaymentsClient(meshTarget('payments'), credentials.createInsecure(), meshClientOptions(mesh, 'payments'))
  const edge = new EdgeRecorder()
  // Each paid order is announced as a CloudEvent on the namespace's default broker (in the control
  // endpoint); publish resolves once the broker has it on disk. The checkout does not wait for it.
  const ev = events(mesh)
  const counts = { published: 0, publishFailed: 0, publishPending: 0, matching: 0 }
  const announce = (order: string, amount: number): void => {
    counts.publishPending++
    ev.publish({ type: 'shop.order.created', source: '/shop/orders', subject: order, amount, datacontenttype: 'application/json', data: { order, amount } }).then(
      () => {
        counts.publishPending--
        counts.published++
        if (amount >= 50) counts.matching++
      },
      () => {
        counts.publishPending--
        counts.publishFailed++
      },
    )
  }

  const app = express()
  app.use(meshlet(mesh))
  app.put('/orders/:id', express.json(), async (req, res) => {
    const id = req.params.id as string
    const amount = Number((req.body as { amount?: number }).amount ?? 0)
    // The call inherits this request's deadline (sent on by web) through the mesh's call scope.
    const payment = await edge.time(
      () =>
        new Promise<{ reply?: ChargeReply; error?: ServiceError }>((resolve) =>
          payments.Charge({ order: id, amount, idempotency_key: `order-${id}` }, (error, reply) => resolve(error ? { error } : { reply })),
        ),
      (r) => ({ outcome: status[r.error?.code ?? status.OK], ok: r.error === undefined }),
    )
    if (payment.error) res.status(502).json({ error: `payments answered ${status[payment.error.code]}: ${payment.error.details}` })
    else {
      announce(id, amount)
      res.json({ order: id, amount, paidBy: payment.reply?.instance })
    }
  })

  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject))
  // The middleware attaches the server to the mesh on its first request; attaching it now as well
  // lets mesh.close() close a server that never got one.
  mesh.attachServer(server)
  // Express does not tell the mesh its port, so the instance registers itself.
  const port = (server.address() as AddressInfo).port
  await mesh.register({ port })
  return {
    mesh,
    port,
    edge,
    cloudEvents: () => ({ ...counts }),
    close: async () => {
      await ev.close()
      payments.close()
      unregister()
    },
  }
})
