/**
 * meshAgent(mesh): an undici Dispatcher. `http://<service>/...` for a mesh service goes through the
 * mesh's client stack; every other origin passes through to a plain undici Agent untouched, so the
 * agent is safe as the global dispatcher.
 */
import { createRequire } from 'node:module'
import { Agent, Dispatcher, type Pool } from 'undici'
import { isIdempotentMethod, type Mesh } from '@meshlet/core'
import { HttpCall } from './http-call.js'
import { httpProtocol } from './http-protocol.js'

type DispatchHandler = Dispatcher.DispatchHandler

export interface MeshAgentOptions {
  /** Dispatcher for origins that are not mesh services. Default: a new undici Agent. */
  fallback?: Dispatcher
  /** Options for the undici Pool of each mesh endpoint. */
  pool?: Pool.Options
}

// Handlers written against undici's older callback names (undici 7's own request API, Node's
// bundled fetch) are adapted once with undici's own wrapper; v2 handlers pass as they are.
type Wrap = { wrap(h: unknown): DispatchHandler }
let wrapHandler: Wrap | undefined
function asV2(handler: DispatchHandler): DispatchHandler {
  if (typeof handler.onRequestStart === 'function') return handler
  wrapHandler ??= createRequire(createRequire(import.meta.url).resolve('undici'))('./lib/handler/wrap-handler.js') as Wrap
  return wrapHandler.wrap(handler)
}

/** The host of `http://payments` or `http://payments:80/` without building a URL. */
function serviceHost(origin: string | URL | undefined): string | undefined {
  if (origin === undefined) return undefined
  if (typeof origin !== 'string') return origin.protocol === 'http:' && (origin.port === '' || origin.port === '80') ? origin.hostname : undefined
  if (!origin.startsWith('http://')) return undefined
  let end = origin.length
  for (let i = 7; i < origin.length; i++) {
    const c = origin.charCodeAt(i)
    if (c === 47 /* / */) {
      end = i
      break
    }
    if (c === 58 /* : */) {
      const port = origin.slice(i + 1).replace(/\/$/, '')
      return port === '80' ? origin.slice(7, i) : undefined
    }
  }
  return origin.slice(7, end)
}

export class MeshAgent extends Dispatcher {
  readonly mesh: Mesh
  readonly #fallback: Dispatcher
  readonly #ownsFallback: boolean
  readonly #protocol

  constructor(mesh: Mesh, options: MeshAgentOptions = {}) {
    super()
    this.mesh = mesh
    this.#fallback = options.fallback ?? new Agent()
    this.#ownsFallback = options.fallback === undefined
    this.#protocol = httpProtocol(options.pool ? { metrics: mesh.metrics, pool: options.pool } : { metrics: mesh.metrics })
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: DispatchHandler): boolean {
    const host = serviceHost(opts.origin)
    const dest = host === undefined ? undefined : this.mesh.destination(host)
    if (dest === undefined) return this.#fallback.dispatch(opts, handler)
    const h = asV2(handler)
    const ctx = dest.newContext(opts.idempotent ?? isIdempotentMethod(opts.method))
    const call = new HttpCall(opts, h)
    h.onRequestStart?.(call, {})
    if (call.aborted) {
      h.onResponseError?.(call, call.reason!)
      return true
    }
    dest.stack(this.#protocol)(call, ctx).then(
      (res) => res.deliver(),
      (err: unknown) => call.fail(err),
    )
    return true
  }

  override async close(): Promise<void> {
    if (this.#ownsFallback) await this.#fallback.close()
  }

  override async destroy(): Promise<void> {
    if (this.#ownsFallback) await this.#fallback.destroy()
  }
}

/** An undici Dispatcher that sends `http://<service>/...` through the mesh and everything else straight through. */
export function meshAgent(mesh: Mesh, options?: MeshAgentOptions): MeshAgent {
  return new MeshAgent(mesh, options)
}
