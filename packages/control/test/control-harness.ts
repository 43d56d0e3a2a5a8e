/** Shared setup for the control endpoint's integration tests: temp dirs, servers, raw HTTP, watch readers, the CLI. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ControlClient, type WatchEvent } from '@meshlet/core'
import { silentLogger, startControl, type ControlOptions, type ControlServer } from '../src/index.js'

export const ADMIN = 'admin-token-for-tests'
export const JOIN = 'join-token-for-tests'
export const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))

export const issuePolicyYaml = `apiVersion: meshlet.dev/v1
kind: ServicePolicy
metadata: { name: payments, namespace: default }
spec:
  service: payments
  timeout: 2s
  retries: { attempts: 3, perTryTimeout: 500ms }
`

export function policy(name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'meshlet.dev/v1', kind: 'ServicePolicy', metadata: { name, namespace: 'default', ...metadata }, spec: { service: name, ...spec } }
}

const dirs: string[] = []
export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshlet-control-'))
  dirs.push(d)
  return d
}
export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
}

export async function startTestControl(options: Partial<ControlOptions> = {}): Promise<ControlServer> {
  return startControl({ port: 0, dataDir: options.dataDir ?? (await tempDir()), adminToken: ADMIN, joinToken: JOIN, log: silentLogger, ...options })
}

/**
 * Stops `control` and, while it is down, lands five ServicePolicy changes for `service` (timeouts
 * 1s … 5s) through another endpoint on the same data directory; then starts it again on its port
 * keeping only `historySize` changes. A client that followed it is now behind the history kept.
 */
export async function restartBehindHistory(control: ControlServer, dataDir: string, service: string, historySize = 2): Promise<ControlServer> {
  const port = control.port
  await control.close()
  const other = await startTestControl({ dataDir, port: 0 })
  const admin = new ControlClient({ url: other.url, token: ADMIN })
  for (const t of ['1s', '2s', '3s', '4s', '5s']) await admin.put(policy(service, { timeout: t }) as never)
  await other.close()
  return startTestControl({ dataDir, port, historySize })
}

export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One request over a fresh connection, with the path sent exactly as given (no URL normalization). */
export function call(base: string, method: string, path: string, options: { token?: string | null; body?: string | object; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(base)
  const token = options.token === undefined ? ADMIN : options.token
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Follows `GET /v1/watch` and collects its events; `until` resolves when a predicate over them holds. */
export class WatchReader {
  readonly events: WatchEvent[] = []
  status = 0
  #buffer = ''
  #waiters: { test: (events: WatchEvent[]) => boolean; resolve: () => void }[] = []
  #ended = false
  #close: () => void = () => {}
  readonly ready: Promise<void>

  constructor(base: string, query = '', options: { sse?: boolean; token?: string; headers?: Record<string, string> } = {}) {
    const { hostname, port } = new URL(base)
    this.ready = new Promise((resolve, reject) => {
      const req = request({ host: hostname, port, path: `/v1/watch${query}`, agent: false, headers: { authorization: `Bearer ${options.token ?? JOIN}`, ...(options.sse ? { accept: 'text/event-stream' } : {}), ...options.headers } }, (res) => {
        this.status = res.statusCode ?? 0
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => this.#feed(chunk, options.sse === true))
        res.on('end', () => {
          this.#ended = true
          this.#check()
        })
        res.on('error', () => {})
        resolve()
      })
      req.on('error', reject)
      this.#close = () => req.destroy()
      req.end()
    })
  }

  get ended(): boolean {
    return this.#ended
  }

  until(test: (events: WatchEvent[]) => boolean): Promise<void> {
    if (test(this.events)) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push({ test, resolve }))
  }

  close(): void {
    this.#close()
  }

  #feed(chunk: string, sse: boolean): void {
    this.#buffer += chunk
    const sep = sse ? '\n\n' : '\n'
    let at: number
    while ((at = this.#buffer.indexOf(sep)) >= 0) {
      const frame = this.#buffer.slice(0, at)
      this.#buffer = this.#buffer.slice(at + sep.length)
      if (frame === '') continue
      const data = sse ? frame.split('\n').find((l) => l.startsWith('data: '))?.slice(6) : frame
      if (data !== undefined) this.events.push(JSON.parse(data) as WatchEvent)
    }
    this.#check()
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(this.events) && !this.#ended) return true
      w.resolve()
      return false
    })
  }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the compiled `meshlet` CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, MESHLET_CONTROL: '', MESHLET_TOKEN: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin ?? '')
  })
}

/** `meshlet control` in a child process; resolves once it listens (or rejects with its stderr if it exits first). */
export function spawnControl(dataDir: string, env: Record<string, string> = { MESHLET_TOKEN: ADMIN, MESHLET_JOIN_TOKEN: JOIN }, port = 0): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'control', '--port', String(port), '--data', dataDir], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString()
      const m = /listening on (http:\/\/\S+)/.exec(stdout)
      if (m) resolve({ child, url: m[1]!, stderr: () => stderr })
    })
    child.on('exit', (code) => reject(Object.assign(new Error(`meshlet control exited with ${code}: ${stderr}`), { code, stderr })))
  })
}

/** SIGKILLs a child and waits until it is gone. */
export function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}
