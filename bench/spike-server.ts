/**
 * One server instance of the spike bench, run as its own process:
 * `node spike-server.js CAPACITY WORK_MS ADMISSION_JSON|off` serves POSTs on a free port of
 * 127.0.0.1 through `createMeshServer` (service "spike"). Its handler stands for a resource of
 * CAPACITY slots (a connection pool): each request holds one slot for WORK_MS of async work, and
 * waits first in, first out for a free one. ADMISSION_JSON is the mesh's `admission` option, or
 * "off". Sends `{ port }` to the parent over IPC once it listens; answers `{ stats: true }` with
 * `{ stats: { served, peakInflight, refused, rejected } }`; exits when the parent goes.
 */
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMesh, type MeshOptions } from '@meshlet/core'
import { createMeshServer } from '@meshlet/http'

const [capacityArg, workArg, admissionArg] = process.argv.slice(2)
const capacity = Number(capacityArg)
const workMs = Number(workArg)
if (!Number.isInteger(capacity) || capacity < 1 || !(workMs >= 0) || admissionArg === undefined) throw new Error('usage: spike-server.js CAPACITY WORK_MS ADMISSION_JSON|off')
const admission = admissionArg === 'off' ? undefined : (JSON.parse(admissionArg) as MeshOptions['admission'])

const BODY = Buffer.alloc(1024, 'x')
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) }

let inflight = 0
let peakInflight = 0
let served = 0
const waiting: (() => void)[] = []

async function withSlot(work: () => Promise<void>): Promise<void> {
  if (inflight >= capacity) await new Promise<void>((resolve) => waiting.push(resolve))
  else inflight++
  peakInflight = Math.max(peakInflight, inflight)
  try {
    await work()
  } finally {
    const next = waiting.shift()
    // The slot passes straight to the next waiter (inflight unchanged), or is freed.
    if (next) next()
    else inflight--
  }
}

const mesh = await createMesh({ service: 'spike', shutdownSignals: false, ...(admission ? { admission } : {}) })
const server = createMeshServer(mesh, (req, res) => {
  req.resume()
  void withSlot(() => sleep(workMs)).then(() => {
    served++
    res.writeHead(200, HEADERS)
    res.end(BODY)
  })
})
server.keepAliveTimeout = 60_000
await new Promise<void>((resolve, reject) => {
  server.once('error', reject)
  server.listen(0, '127.0.0.1', resolve)
})

const ready = { port: (server.address() as AddressInfo).port }
if (process.send) {
  process.send(ready)
  process.on('message', (m: { stats?: unknown }) => {
    if (m.stats !== true) return
    const rejected = mesh.inspect().inbound.admission.rejected
    const refused = Object.values(rejected).reduce((a, n) => a + n, 0)
    process.send!({ stats: { served, peakInflight, refused, rejected } })
  })
  process.on('disconnect', () => process.exit(0))
} else {
  console.log(JSON.stringify(ready))
}
