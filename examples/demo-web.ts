/**
 * web: Fastify with the meshlet plugin, which registers the instance with the control endpoint once
 * it listens. `POST /checkout/:cart` places the order with undici's `fetch` to
 * `http://orders/orders/:cart` through the mesh agent, over the orders instances the control
 * endpoint lists; the deadline set here travels on to orders and from there to payments.
 */
import Fastify from 'fastify'
import { fetch } from 'undici'
import { createMesh } from '@meshlet/core'
import { meshAgent } from '@meshlet/http'
import { meshlet } from '@meshlet/http/fastify'
import { runChild } from './demo-child.js'
import { EdgeRecorder } from './demo-shared.js'

runChild(async ({ control, token }) => {
  // `defaults` applies to every destination, under any ServicePolicy for it: here, the orders timeout.
  // drain.delay: see demo-payments.ts.
  const mesh = await createMesh({ service: 'web', control, token, defaults: { timeout: '5s' }, drain: { delay: '250ms' } })
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
