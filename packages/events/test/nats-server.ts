/**
 * Test support: a real `nats-server -js` process on a free loopback port with its own store
 * directory. Readiness is awaited, not slept for: the server's "Server is ready" log line, then a
 * client connection that finds JetStream enabled. A missing binary fails the test with the way to
 * install it (CI's .ci/run installs Debian's nats-server); nothing is skipped.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { afterAll, beforeAll } from 'vitest'

export interface NatsServer {
  /** `nats://127.0.0.1:<port>`: the same across restarts. */
  readonly url: string
  readonly port: number
  readonly storeDir: string
  /** Stops it cleanly (SIGTERM: JetStream flushes its state) and waits for the exit. */
  stop(): Promise<void>
  /** Sends `signal` (SIGKILL for a crash) and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>
  /** Stops it if it runs, then starts it again on the same port and store directory. */
  restart(): Promise<void>
}

const running = new Set<ChildProcess>()
// A test run that dies must not leave servers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Starts a server for the test file: before all its tests, stopped (and its store removed) after all. */
export function useNatsServer(): () => NatsServer {
  let server: (NatsServer & { dispose(): Promise<void> }) | undefined
  beforeAll(async () => {
    server = await startNatsServer()
  })
  afterAll(async () => {
    await server?.dispose()
  })
  return () => {
    if (server === undefined) throw new Error('The nats-server has not started (see the beforeAll error above).')
    return server
  }
}

export async function startNatsServer(): Promise<NatsServer & { dispose(): Promise<void> }> {
  const storeDir = await mkdtemp(join(tmpdir(), 'meshlet-nats-'))
  const port = await freePort()
  const url = `nats://127.0.0.1:${port}`
  let child: ChildProcess | undefined = await launch(port, storeDir)

  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child
    child = undefined
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return
    const exited = once(current, 'exit')
    current.kill(signal)
    await exited
  }
  return {
    url,
    port,
    storeDir,
    stop: () => exit('SIGTERM'),
    kill: (signal) => exit(signal),
    restart: async () => {
      await exit('SIGTERM')
      child = await launch(port, storeDir)
    },
    dispose: async () => {
      await exit('SIGTERM')
      await rm(storeDir, { recursive: true, force: true })
    },
  }
}

async function launch(port: number, storeDir: string): Promise<ChildProcess> {
  const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir]
  const child = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let log = ''
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT'
            ? new Error('nats-server is not installed: install it (Debian/Ubuntu: sudo apt-get install -y nats-server; .ci/run does this in CI) to run the JetStream tests.')
            : err,
        )
      })
      child.once('exit', (code, signal) => reject(new Error(`nats-server ${args.join(' ')} exited (${code ?? signal}) before it was ready:\n${log}`)))
      child.stderr?.setEncoding('utf8')
      const onLog = (chunk: string): void => {
        log += chunk
        if (!log.includes('Server is ready')) return
        child.stderr?.off('data', onLog)
        resolve()
      }
      child.stderr?.on('data', onLog)
    })
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  // Keep reading its log so a full pipe never blocks the server.
  child.stderr?.resume()
  // Ready means a client gets in and finds JetStream.
  const nc = await connect({ servers: `127.0.0.1:${port}` })
  try {
    await jetstreamManager(nc)
  } finally {
    await nc.close()
  }
  return child
}

/** A port nothing listens on now (the kernel's pick; the server binds it right after). */
async function freePort(): Promise<number> {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const address = probe.address()
  probe.close()
  await once(probe, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}
