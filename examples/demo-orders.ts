/**
 * orders: Express with the `meshlet(mesh)` middleware. `PUT /orders/:id` charges the order through
 * `http://payments/charge` with undici's `request` and the mesh agent, which balances over the
 * payments instances, retries, ejects outliers and measures. The instances of payments and the
 * policy for calling them (balancer, retries, timeouts, ejection) come from the control endpoint:
 * the `ServicePolicy` named payments, which the demo changes with `meshlet apply` while it runs.
 */
import type { AddressInfo } from 'node:net'
import express from 'express'
import { request } from 'undici'
import { createMesh } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { meshlet } from '@meshlet/http/express'
import { runChild } from './demo-child.js'
import { EdgeRecorder } from './demo-shared.js'

runChild(async ({ control, token }) => {
  // No endpoints and no policy here: both follow the control endpoint live. drain.delay: see demo-payments.ts.
  const mesh = await createMesh({ service: 'orders', control, token, drain: { delay: '250ms' } })
  const agent = meshAgent(mesh)
  const edge = new EdgeRecorder()

  const app = express()
  app.use(meshlet(mesh))
  app.put('/orders/:id', express.json(), async (req, res) => {
    const id = req.params.id as string
    const amount = Number((req.body as { amount?: number }).amount ?? 0)
    try {
      const payment = await edge.time(
        () =>
          request('http://payments/charge', {
            method: 'POST',
            idempotent: true,
            headers: { 'content-type': 'application/json', 'idempotency-key': `order-${id}` },
            body: JSON.stringify({ order: id, amount }),
            dispatcher: agent,
          }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as { instance?: string } })),
        (r) => ({ outcome: String(r.status), ok: r.status === 200 }),
      )
      if (payment.status !== 200) res.status(502).json({ error: `payments answered ${payment.status}` })
      else res.json({ order: id, amount, paidBy: payment.body.instance })
    } catch (err) {
      res.status(502).json({ error: (err as Error).message })
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
  return { mesh, port, edge, close: () => agent.close() }
})
