/**
 * orders: Express with the `meshlet(mesh)` middleware. `PUT /orders/:id` charges the order through
 * `http://payments/charge` with undici's `request` and the mesh agent, which balances over the
 * payments instances, retries, ejects outliers and measures.
 */
import type { AddressInfo } from 'node:net'
import express from 'express'
import { request } from 'undici'
import { createMesh } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { meshlet } from '@meshlet/http/express'
import { runChild } from './demo-child.js'
import { EdgeRecorder } from './demo-shared.js'

runChild(async ({ upstream = [] }) => {
  const mesh = await createMesh({
    service: 'orders',
    services: {
      payments: {
        endpoints: upstream,
        // Generous for a ~5 ms call, so that a busy machine slows the demo down without failing it.
        timeout: '3s',
        // A charge is a POST, but one with an idempotency key (below) may be repeated, so 503s and
        // resets are retried: at most 2 retries, each on an endpoint the call has not tried yet.
        retries: { attempts: 2, perTryTimeout: '1s', backoff: { base: '5ms', max: '50ms' } },
        // Scaled down for a 4 s run (defaults: 10 s decay, 5 failures, 30 s ejections). The
        // balancer charges each failure 1 s of latency and so steers traffic off a failing
        // instance at once; it rarely fails 5 times in a row, and ejection is the backstop.
        balancer: { type: 'p2c-peak-ewma', decay: '1s' },
        outlier: { consecutiveFailures: 3, interval: '1s', baseEjectionTime: '1s' },
      },
    },
  })
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
  return { mesh, port: (server.address() as AddressInfo).port, edge, close: () => agent.close() }
})
