import { createServer } from 'node:net'
import { createJetStreamBackend, type BrokerBackend } from '@meshlet/events'
import { startControl } from '../http/control-server.js'
import { stderrLogger } from '../logger.js'
import { UsageError, type CliContext } from './cli-context.js'

/** Runs the endpoint until SIGTERM or SIGINT; returns -1 (keep running) once listening. */
export async function controlCommand(ctx: CliContext): Promise<number> {
  if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument "${ctx.positionals[0]}"`)
  const portText = (ctx.values.port as string | undefined) ?? '7070'
  const port = Number(portText)
  if (!/^\d{1,5}$/.test(portText) || port > 65_535) throw new UsageError(`--port ${portText}: expected a port number 0-65535`)
  const host = (ctx.values.host as string | undefined) ?? '127.0.0.1'
  // Before anything is created in the data directory (tokens on a first start): a busy port fails here.
  await checkPortFree(host, port)
  const backend = await brokerBackend((ctx.values.broker as string | undefined) ?? 'embedded')
  const server = await startControl({
    port,
    host,
    dataDir: (ctx.values.data as string | undefined) ?? './meshlet-data',
    adminToken: process.env.MESHLET_TOKEN,
    joinToken: process.env.MESHLET_JOIN_TOKEN,
    log: stderrLogger,
    ...(backend !== undefined ? { broker: { backend } } : {}),
  })
  ctx.out(`meshlet control endpoint listening on ${server.url} (data: ${server.state.resourceVersion === 0 ? 'new' : `resourceVersion ${server.state.resourceVersion}`})`)
  const stop = (signal: string) => {
    stderrLogger.info(`${signal}: closing (watches end, writes in flight finish)`)
    server.close().then(
      () => process.exit(0),
      (e: unknown) => {
        stderrLogger.error(`closing failed: ${(e as Error).message}`)
        process.exit(1)
      },
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  return -1
}

/**
 * `--broker embedded` (the default: the durable log in <data>/broker) or
 * `--broker nats://host:4222[,nats://…]` (NATS JetStream; undefined means embedded).
 */
async function brokerBackend(value: string): Promise<BrokerBackend | undefined> {
  if (value === 'embedded') return undefined
  const servers = value.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (servers.length === 0 || !servers.every((s) => /^(nats|tls):\/\/[^\s/]+$/.test(s))) throw new UsageError(`--broker ${value}: expected "embedded" or nats://host:4222[,nats://host:4222...]`)
  return createJetStreamBackend({ servers })
}

/** Fails with what to do when `host:port` cannot be listened on (in use, or not allowed). */
function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'EADDRINUSE' ? `${host}:${port} is already in use (another meshlet control?); stop it or pass --port` : `cannot listen on ${host}:${port}: ${e.code ?? e.message}`)),
    )
    probe.listen(port, host, () => probe.close(() => resolve()))
  })
}
