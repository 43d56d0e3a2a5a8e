import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import { meshServerOptions } from './server-defaults.js'
import type { Mesh } from '@meshlet/core'
import { HttpInboundCall, httpServerSide, serveInbound, type HttpServerSide } from './inbound.js'

export interface MeshHandlerOptions {
  /** The route template for metrics (`/orders/:id`); without it `http.route` is left out, never the raw path. */
  route?: (req: IncomingMessage) => string | undefined
}

class NodeHttpCall extends HttpInboundCall {
  readonly #handler: RequestListener
  readonly #route: MeshHandlerOptions['route']

  constructor(side: HttpServerSide, req: IncomingMessage, res: ServerResponse, handler: RequestListener, route: MeshHandlerOptions['route']) {
    super(side, req, res)
    this.#handler = handler
    this.#route = route
  }

  route(): string | undefined {
    return this.#route?.(this.req)
  }

  runApp(): void {
    this.runInScope(NodeHttpCall.#listen)
  }

  static #listen(call: NodeHttpCall): void {
    call.#handler(call.req, call.res)
  }
}

/** Wraps a node:http request listener with the mesh's server stack. */
export function meshHandler(mesh: Mesh, handler: RequestListener, options: MeshHandlerOptions = {}): RequestListener {
  const side = httpServerSide(mesh)
  const route = options.route
  return (req: IncomingMessage, res: ServerResponse) => serveInbound(new NodeHttpCall(side, req, res, handler, route))
}

/** `http.createServer` with the mesh's server stack; the mesh drains it on close() and SIGTERM. */
export function createMeshServer(mesh: Mesh, handler: RequestListener, options: MeshHandlerOptions & { server?: ServerOptions } = {}): Server {
  const server = createServer(meshServerOptions(options.server), meshHandler(mesh, handler, options))
  mesh.attachServer(server)
  mesh.registerOnListen(server)
  return server
}
