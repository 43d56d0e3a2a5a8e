/**
 * A watcher process of the propagation bench: `node watchers.js` (IPC only). Told
 * `{ control, token, prefix, count }`, it creates `count` meshes that follow the control endpoint
 * (services `<prefix>-0` ...), each with a `payments` destination, and answers `{ ready }`. From
 * then on it reports, per ServicePolicy resourceVersion, when each mesh applied it, once all have:
 * `{ rv, appliedAt: number[] }` (wall clock, ms, from `performance.timeOrigin`, comparable
 * across processes of one machine). The times come from the `meshlet:config:applied` diagnostics
 * channel, published synchronously by `Mesh.applyPolicy` once the new policy is in force.
 * `{ check: timeoutMs }` answers `{ mismatched }`: meshes whose payments timeout is not that.
 * Exits when the parent goes.
 */
import { subscribe } from 'node:diagnostics_channel'
import { createMesh, type Mesh } from '@meshlet/core'

interface Start {
  control: string
  token: string
  prefix: string
  count: number
}

const wallNow = (): number => performance.timeOrigin + performance.now()
const send = (m: unknown): void => void process.send!(m)

/** resourceVersion → mesh → when it applied it (the first time). */
const applied = new Map<number, Map<string, number>>()
const meshes: Mesh[] = []
let expected = Infinity

subscribe('meshlet:config:applied', (message) => {
  const at = wallNow()
  const { mesh, service, source } = message as { mesh: string; service: string; source: string }
  // applyRoutes publishes on this channel too; only the ServicePolicy counts here.
  if (service !== 'payments' || !source.startsWith('ServicePolicy ')) return
  const rv = Number(/resourceVersion (\d+)/.exec(source)?.[1])
  if (!(rv > 0)) return
  let byMesh = applied.get(rv)
  if (byMesh === undefined) applied.set(rv, (byMesh = new Map()))
  if (byMesh.has(mesh)) return
  byMesh.set(mesh, at)
  if (byMesh.size === expected) send({ rv, appliedAt: [...byMesh.values()] })
})

async function start(o: Start): Promise<void> {
  expected = o.count
  // A few at a time: each one opens its watch and waits for the endpoint's full state.
  for (let i = 0; i < o.count; i += 50) {
    const batch = Array.from({ length: Math.min(50, o.count - i) }, (_, j) => createMesh({ service: `${o.prefix}-${i + j}`, control: o.control, token: o.token, shutdownSignals: false }))
    meshes.push(...(await Promise.all(batch)))
  }
  for (const m of meshes) if (m.destination('payments') === undefined) throw new Error(`mesh ${m.service}: the registry does not know "payments"`)
  send({ ready: meshes.length, rss: process.memoryUsage().rss })
}

process.on('message', (m: Start | { check: number }) => {
  if ('check' in m) {
    send({ mismatched: meshes.filter((x) => x.inspect().destinations.payments?.policy.timeout !== m.check).length })
    return
  }
  start(m).catch((err: unknown) => {
    console.error(`watchers ${m.prefix}: ${(err as Error).stack ?? String(err)}`)
    process.exit(1)
  })
})
process.on('disconnect', () => process.exit(0))
