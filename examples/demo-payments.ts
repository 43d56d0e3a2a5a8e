/**
 * payments: a bare node:http server through `createMeshServer`, which registers the instance with
 * the control endpoint once it listens. `POST /charge` takes a few ms; an instance configured slow
 * adds `slowMs`, and a flaky one fails `failRate` of its requests, half with a 503 and half by
 * resetting the connection.
 */
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMesh } from '@meshlet/core'
import { createMeshServer } from '@meshlet/http'
import { runChild } from './demo-child.js'
import { ServedRecorder } from './demo-shared.js'

async function readBody(req: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of req) body += String(chunk)
  return body
}

runChild(async ({ instance, control, token, slowMs = 0, failRate = 0 }) => {
  // Peers hear of the deregistration on close() through their watch within milliseconds on
  // loopback, so the drain delay (default 1 s with a control endpoint) can be short here.
  const mesh = await createMesh({ service: 'payments', control, token, drain: { delay: '250ms' } })
  const served = new ServedRecorder()

  const server = createMeshServer(mesh, (req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/charge') {
        res.writeHead(404).end()
        return
      }
      const done = served.arrived()
      const charge = JSON.parse(await readBody(req)) as { order: string; amount: number }
      await sleep(1 + Math.random() * 3 + slowMs)
      const roll = Math.random()
      if (roll < failRate / 2) {
        done('503')
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"payment processor unavailable"}')
      } else if (roll < failRate) {
        done('reset')
        req.socket.destroy()
      } else {
        done('ok')
        const body = JSON.stringify({ instance, order: charge.order, amount: charge.amount, status: 'captured' })
        res.writeHead(200, { 'content-type': 'application/json' }).end(body)
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(400).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { mesh, port: (server.address() as AddressInfo).port, served }
})
