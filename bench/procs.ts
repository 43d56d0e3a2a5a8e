/**
 * Child processes of the benches: upstream servers (bench/dist/server.js), haproxy sidecars, the
 * control endpoint (the `meshlet control` CLI) and watcher processes (bench/dist/watchers.js).
 * Every child is tracked and killed by its pid when the bench ends, however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  children.clear()
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
  tempDirs.clear()
}
process.once('exit', cleanup)
for (const s of ['SIGINT', 'SIGTERM'] as const) {
  process.once(s, () => {
    cleanup()
    process.exit(130)
  })
}

/** The one launcher: starts `cmd` and tracks it (killed by pid when the bench ends); `pipeStdout` lets the caller read its stdout. */
export function launch(cmd: string, args: string[], o: { ipc?: boolean; pipeStdout?: boolean; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', o.pipeStdout ? 'pipe' : 'inherit', 'inherit', ...(o.ipc ? (['ipc'] as const) : [])], ...(o.env ? { env: o.env } : {}) })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Resolves with the first message of `child` (over IPC) that `accept` takes, or rejects on exit or after `timeoutMs`. */
export function nextMessage<T>(child: ChildProcess, what: string, accept: (m: unknown) => m is T, timeoutMs = 60_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    const onMessage = (m: unknown): void => {
      if (!accept(m)) return
      done()
      resolve(m)
    }
    const onExit = (code: number | null): void => {
      done()
      reject(new Error(`${what}: the child exited with ${code} first`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${what}: nothing within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Stops a child we started and waits until it is gone. */
export async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await gone
}

export interface Upstream {
  child: ChildProcess
  ports: number[]
}

/** Starts bench/dist/server.js with `PORT[:DELAY_MS]` specs and waits for its IPC readiness message. */
export async function startUpstream(specs: string[]): Promise<Upstream> {
  const child = launch(process.execPath, [join(import.meta.dirname, 'server.js'), ...specs], { ipc: true })
  const { ports } = await nextMessage(child, 'upstream server ready', (m): m is { ports: number[] } => Array.isArray((m as { ports?: unknown }).ports), 10_000)
  return { child, ports }
}

export interface ControlProcess {
  child: ChildProcess
  url: string
  dataDir: string
}

/**
 * Starts the compiled `meshlet control --port 0 --data <new temp dir>` CLI of @meshlet/control as
 * its own process, with the tokens from the environment, and resolves with the URL it prints.
 */
export async function startControlProcess(tokens: { admin: string; join: string }, extraArgs: string[] = []): Promise<ControlProcess> {
  const cli = join(dirname(createRequire(import.meta.url).resolve('@meshlet/control/package.json')), 'dist', 'cli', 'main.js')
  const dataDir = mkdtempSync(join(tmpdir(), 'meshlet-bench-control-'))
  tempDirs.add(dataDir)
  const child = launch(process.execPath, [cli, 'control', '--port', '0', '--data', dataDir, ...extraArgs], { pipeStdout: true, env: { ...process.env, MESHLET_TOKEN: tokens.admin, MESHLET_JOIN_TOKEN: tokens.join } })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`meshlet control did not say where it listens within 10 s; stdout so far: ${out}`)), 10_000)
    const onData = (chunk: Buffer): void => {
      out += chunk.toString()
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m === null) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stdout!.pipe(process.stdout)
      resolve(m[1]!)
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`meshlet control exited with ${code} before it listened; stdout: ${out}`))
    })
  })
  return { child, url, dataDir }
}

/** Resident set size of a child now and at its peak, KiB, from /proc/<pid>/status (Linux); NaN where unavailable. */
export function rssKiBOf(child: ChildProcess): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
    return { rss: field('VmRSS'), peak: field('VmHWM') }
  } catch {
    return { rss: NaN, peak: NaN }
  }
}

/** CPU time (user + system) a child has used so far, ms, from /proc (Linux); 0 where unavailable. */
export function cpuMsOf(child: ChildProcess): number {
  try {
    // Fields after the parenthesised command name: state is field 3, utime and stime are 14 and 15.
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // USER_HZ is 100 on Linux
  } catch {
    return 0
  }
}

/** CPU time (all but idle and iowait) every process of the machine has used since boot, ms, from /proc/stat; NaN where unavailable. */
export function machineCpuMs(): number {
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/)
    const [user, nice, system, _idle, _iowait, irq, softirq, steal] = ticks.map(Number) as [number, number, number, number, number, number, number, number]
    return ((user + nice + system + irq + softirq + steal) * 1000) / 100 // USER_HZ is 100 on Linux
  } catch {
    return NaN
  }
}

/** A port that was free a moment ago (for children that cannot report the port they picked). */
export async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise((resolve) => s.close(resolve))
  return port
}

/** Resolves once 127.0.0.1:port accepts connections; polls every 20 ms for at most `timeoutMs`. */
async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      sock.once('connect', () => (sock.destroy(), resolve(true)))
      sock.once('error', () => resolve(false))
    })
    if (ok) return
    if (performance.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * An haproxy sidecar stand-in: one thread, HTTP mode, keep-alive on both sides, listening on a
 * free port and forwarding to 127.0.0.1:target. Returns its child and port once it accepts.
 */
export async function startHaproxy(target: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-bench-haproxy-'))
  tempDirs.add(dir)
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(
    cfg,
    `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend sidecar
  bind 127.0.0.1:${port}
  default_backend upstream

backend upstream
  server s1 127.0.0.1:${target} maxconn 1000
`,
  )
  const child = launch('haproxy', ['-f', cfg, '-db', '-q'])
  let onExit!: (code: number | null) => void
  try {
    await Promise.race([waitForPort(port), new Promise((_, reject) => child.once('exit', (onExit = (code) => reject(new Error(`haproxy exited with ${code}; config in ${cfg}`)))))])
  } finally {
    child.off('exit', onExit)
  }
  return { child, port }
}

/**
 * A NATS server with JetStream (Debian's nats-server, `-js`) on a free port, its store in a temp
 * dir; resolves once it accepts connections.
 */
export async function startNatsServer(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-bench-nats-'))
  tempDirs.add(dir)
  const child = launch('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir, '-l', join(dir, 'nats.log')])
  child.once('error', (err) => {
    throw new Error(`could not start nats-server (${err.message}); install it: apt-get install nats-server`)
  })
  await waitForPort(port)
  return { child, url: `nats://127.0.0.1:${port}` }
}
