/**
 * Child processes of the benches: upstream servers (bench/dist/server.js) and haproxy sidecars.
 * Every child is tracked and killed by its pid when the bench ends, however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

/** The one launcher: starts `cmd`, tracks it, and rejects `exited` if it dies before `stop()`. */
export function launch(cmd: string, args: string[], ipc = false): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', ...(ipc ? (['ipc'] as const) : [])] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
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
  const child = launch(process.execPath, [join(import.meta.dirname, 'server.js'), ...specs], true)
  const ports = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('upstream server not ready within 10 s')), 10_000)
    child.once('message', (m) => {
      clearTimeout(timer)
      resolve((m as { ports: number[] }).ports)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`upstream server exited with ${code} before it was ready`))
    })
  })
  return { child, ports }
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
