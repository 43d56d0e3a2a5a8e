import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import { callScope, withTraceContext, type Mesh } from '@meshlet/core'
import { admitInbound } from './inbound.js'

export interface MeshHandlerOptions {
  /** The route template for metrics (`/orders/:id`); without it `http.route` is left out, never the raw path. */
  route?: (req: IncomingMessage) => string | undefined
}

/** Wraps a node:http request listener with the mesh's server stack. */
export function meshHandler(mesh: Mesh, handler: RequestListener, options: MeshHandlerOptions = {}): RequestListener {
  const routeOf = options.route
  return (req: IncomingMessage, res: ServerResponse) => {
    admitInbound(mesh, req, res, routeOf ? () => routeOf(req) : () => undefined, (inbound) => callScope.run(inbound.scope, () => withTraceContext(inbound.trace, () => handler(req, res))))
  }
}

/** `http.createServer` with the mesh's server stack; the mesh drains it on close() and SIGTERM. */
export function createMeshServer(mesh: Mesh, handler: RequestListener, options: MeshHandlerOptions & { server?: ServerOptions } = {}): Server {
  const server = createServer(options.server ?? {}, meshHandler(mesh, handler, options))
  mesh.attachServer(server)
  mesh.registerOnListen(server)
  return server
}
