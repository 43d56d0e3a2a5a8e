/** Shared setup for the broker's integration tests: a subscriber over node:http, publishing, waiting on the broker's status. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ControlClient } from '@meshlet/core'
import { request } from 'undici'
import { ADMIN, JOIN } from './control-harness.js'

export interface ReceivedRequest {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
  /** performance.now() when the request arrived. */
  readonly at: number
}

export interface Answer {
  status: number
  headers?: Record<string, string>
  body?: string
}

/** An event handler over a real socket: records every request and answers as `answer` says (200 by default). */
export class TestSubscriber {
  readonly requests: ReceivedRequest[] = []
  /** Requests whose answer is still being awaited (a handler that holds them). */
  pending = 0
  maxPending = 0
  answer: (req: ReceivedRequest, index: number) => Answer | Promise<Answer> = () => ({ status: 200 })
  readonly #server: Server
  #waiters: { test: () => boolean; resolve: () => void }[] = []

  private constructor(server: Server) {
    this.#server = server
  }

  static async start(): Promise<TestSubscriber> {
    const holder: { self?: TestSubscriber } = {}
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const s = holder.self!
        const r: ReceivedRequest = { path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() }
        const index = s.requests.push(r) - 1
        s.pending++
        s.maxPending = Math.max(s.maxPending, s.pending)
        s.check()
        void Promise.resolve(s.answer(r, index)).then(
          (a) => {
            s.pending--
            res.writeHead(a.status, a.headers ?? {})
            res.end(a.body ?? '')
            s.check()
          },
          () => {
            s.pending--
            res.destroy()
          },
        )
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    holder.self = new TestSubscriber(server)
    return holder.self
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  /** The ce-id of every request, in arrival order. */
  get ids(): string[] {
    return this.requests.map((r) => String(r.headers['ce-id']))
  }

  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push({ test, resolve }))
  }

  check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test()) return true
      w.resolve()
      return false
    })
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** Registers `subscriber` as an instance of `service` (with a long lease: no heartbeats needed). */
export async function registerSubscriber(controlUrl: string, service: string, subscriber: TestSubscriber, options: { namespace?: string; triggers?: Record<string, unknown>[] } = {}): Promise<string> {
  const join = new ControlClient({ url: controlUrl, token: JOIN })
  const reg = await join.register({ service, port: subscriber.port, address: '127.0.0.1', ttl: '1h', ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.triggers ? { triggers: options.triggers as never } : {}) })
  return reg.id
}

export function trigger(name: string, spec: Record<string, unknown>, namespace = 'default'): Record<string, unknown> {
  return { apiVersion: 'meshlet.dev/v1', kind: 'Trigger', metadata: { name, namespace }, spec: { broker: 'default', ...spec } }
}

export function admin(controlUrl: string): ControlClient {
  return new ControlClient({ url: controlUrl, token: ADMIN })
}

export interface PublishResult {
  status: number
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string
  headers: Record<string, string | string[] | undefined>
}

/** POSTs to the ingress: binary mode from `attributes` (ce- headers) unless `headers` say otherwise. */
export async function publish(controlUrl: string, attributes: Record<string, string>, options: { body?: string; contentType?: string; broker?: string; namespace?: string; headers?: Record<string, string>; method?: string; token?: string | null } = {}): Promise<PublishResult> {
  const ce: Record<string, string> = {}
  for (const [k, v] of Object.entries(attributes)) ce[`ce-${k}`] = v
  const token = options.token === undefined ? JOIN : options.token
  const res = await request(`${controlUrl}/v1/ingress/${options.namespace ?? 'default'}/${options.broker ?? 'default'}`, {
    method: (options.method ?? 'POST') as 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': options.contentType ?? 'application/json', ...ce, ...options.headers },
    body: options.body ?? (options.method === undefined || options.method === 'POST' ? '{}' : undefined),
  })
  const text = await res.body.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.statusCode, json, text, headers: res.headers }
}

export function event(id: string, type = 'com.example.order.created', extra: Record<string, string> = {}): Record<string, string> {
  return { specversion: '1.0', id, source: '/tests', type, ...extra }
}

/** GET /v1/triggers/{ns}/{name}/status (undefined on 404). */
export async function triggerStatus(controlUrl: string, name: string, namespace = 'default'): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${controlUrl}/v1/triggers/${namespace}/${name}/status`, { headers: { authorization: `Bearer ${JOIN}` } })
  const text = await res.body.text()
  return res.statusCode === 404 ? undefined : JSON.parse(text)
}

/**
 * Waits until the trigger's status satisfies `test`, reading it each time the broker may have moved
 * on (it has no push channel for status); the test's own timeout bounds the wait.
 */
export async function untilStatus(controlUrl: string, name: string, test: (s: any) => boolean, namespace = 'default'): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (;;) {
    const s = await triggerStatus(controlUrl, name, namespace)
    if (s !== undefined && test(s)) return s
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Waits until the broker no longer knows the trigger (GET …/status answers 404). */
export async function untilGone(controlUrl: string, name: string, namespace = 'default'): Promise<void> {
  while ((await triggerStatus(controlUrl, name, namespace)) !== undefined) await new Promise((r) => setTimeout(r, 20))
}
