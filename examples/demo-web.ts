/**
 * web: Fastify with the meshlet plugin. `POST /checkout/:cart` places the order with undici's
 * `fetch` to `http://orders/orders/:cart` through the mesh agent; the deadline set here travels on
 * to orders and from there to payments.
 */
import Fastify from 'fastify'
import { fetch } from 'undici'
import { createMesh } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { meshlet } from '@meshlet/http/fastify'
import { runChild } from './demo-child.js'
import { EdgeRecorder } from './demo-shared.js'

runChild(async ({ upstream = [] }) => {
  const mesh = await createMesh({ service: 'web', services: { orders: { endpoints: upstream, timeout: '5s' } } })
  const agent = meshAgent(mesh)
  const edge = new EdgeRecorder()

  const app = Fastify()
  await app.register(meshlet, { mesh })
  app.post<{ Params: { cart: string } }>('/checkout/:cart', async (request, reply) => {
    const { cart } = request.params
    try {
      const order = await edge.time(
        () =>
          fetch(`http://orders/orders/${cart}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ amount: 10 + (Number(cart) % 90) }),
            dispatcher: agent,
          }).then(async (r) => ({ status: r.status, body: (await r.json()) as { paidBy?: string } })),
        (r) => ({ outcome: String(r.status), ok: r.status === 200 }),
      )
      if (order.status !== 200) return reply.code(502).send({ error: `orders answered ${order.status}` })
      return { cart, paidBy: order.body.paidBy }
    } catch (err) {
      return reply.code(502).send({ error: (err as Error).message })
    }
  })

  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { mesh, port: Number(new URL(address).port), edge, close: () => agent.close() }
})
