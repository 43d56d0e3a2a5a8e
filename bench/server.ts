/**
 * The upstream for the benches, run as its own process: `node server.js PORT[:DELAY_MS] ...`
 * listens on every given port of 127.0.0.1 (0 picks a free one) and answers every request with a
 * 1 KiB body, after DELAY_MS when given. Once all ports listen it sends `{ ports }` to the parent
 * over IPC (or prints it as a JSON line without IPC), and exits when the parent goes.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

const BODY = Buffer.alloc(1024, 'x')
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) }

function serve(port: number, delayMs: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume()
    const send = (): void => {
      res.writeHead(200, HEADERS)
      res.end(BODY)
    }
    if (delayMs > 0) setTimeout(send, delayMs)
    else send()
  })
  server.keepAliveTimeout = 60_000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve(server))
  })
}

const specs = process.argv.slice(2).map((arg) => {
  const [port, delay] = arg.split(':').map(Number)
  if (!Number.isInteger(port) || (delay !== undefined && !(delay >= 0))) throw new Error(`bad spec "${arg}": expected PORT[:DELAY_MS]`)
  return { port: port!, delay: delay ?? 0 }
})
const servers = await Promise.all(specs.map((s) => serve(s.port, s.delay)))
const ready = { ports: servers.map((s) => (s.address() as AddressInfo).port) }
if (process.send) {
  process.send(ready)
  process.on('disconnect', () => process.exit(0))
} else {
  console.log(JSON.stringify(ready))
}
