/**
 * notifications: handles `shop.order.created` events for large orders through a Knative-style
 * trigger. `events(mesh).trigger()` declares the trigger (its CESQL filter runs in the broker, so
 * only matching events are delivered) and the mesh advertises it in its registration; the broker
 * in the control endpoint delivers each matching event once, through its own mesh, to this
 * service's receiver, mounted on a node:http server with the mesh's server stack.
 */
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { createMesh } from '@meshlet/core'
import { createMeshServer } from '@meshlet/http'
import { events } from '@meshlet/events'
import { runChild } from './demo-child.js'
import { NOTIFY_FILTER, NOTIFY_TRIGGER } from './demo-shared.js'

runChild(async ({ control, token }) => {
  const mesh = await createMesh({ service: 'notifications', control, token, drain: { delay: '250ms' } })
  const ev = events(mesh)
  const seen = new Set<string>()
  const counts = { received: 0, duplicates: 0 }
  ev.trigger(NOTIFY_TRIGGER, { filters: [{ cesql: NOTIFY_FILTER }] }, (event) => {
    counts.received++
    // At-least-once: a redelivered event keeps its source and id.
    const key = `${event.source} ${event.id}`
    if (seen.has(key)) counts.duplicates++
    seen.add(key)
  })
  const server = createMeshServer(mesh, ev.handler())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    mesh,
    port: (server.address() as AddressInfo).port,
    cloudEvents: () => ({ ...counts }),
    close: () => ev.close(),
  }
})
