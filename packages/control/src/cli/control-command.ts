import { createServer } from 'node:net'
import { createJetStreamBackend, type BrokerBackend } from '@meshlet/events'
import { startControl, type ControlOptions } from '../http/control-server.js'
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
    ...limitOptions(ctx.values),
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

/** The flags that raise (or lower) the endpoint's quotas, and the startControl option each sets. */
export const LIMIT_FLAGS = {
  'max-instances-per-service': 'maxInstancesPerService',
  'max-instances-per-namespace': 'maxInstancesPerNamespace',
  'max-instance-metadata-bytes': 'maxInstanceMetadataBytes',
  'max-store-bytes': 'maxStoreBytes',
  'max-watches': 'maxWatches',
  'max-watches-per-token': 'maxWatchesPerToken',
} as const satisfies Record<string, keyof ControlOptions>

export const LIMIT_FLAGS_USAGE = '[--max-instances-per-service N] [--max-instances-per-namespace N] [--max-instance-metadata-bytes B]\n  [--max-store-bytes B] [--max-watches N] [--max-watches-per-token N]   (B: bytes, or with KiB, MiB, GiB)'

const UNITS: Record<string, number> = { '': 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }

function limitOptions(values: Record<string, unknown>): Partial<ControlOptions> {
  const out: Partial<Record<(typeof LIMIT_FLAGS)[keyof typeof LIMIT_FLAGS], number>> = {}
  for (const [flag, option] of Object.entries(LIMIT_FLAGS)) {
    const text = values[flag] as string | undefined
    if (text === undefined) continue
    const m = /^(\d{1,12})(KiB|MiB|GiB)?$/.exec(text)
    const n = m === null ? NaN : Number(m[1]) * UNITS[m[2] ?? '']!
    if (!Number.isSafeInteger(n) || n < 1 || (!flag.endsWith('-bytes') && m?.[2] !== undefined)) {
      throw new UsageError(`--${flag} ${text}: expected a positive integer${flag.endsWith('-bytes') ? ' of bytes, optionally with KiB, MiB or GiB (16KiB)' : ''}`)
    }
    out[option] = n
  }
  return out
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
