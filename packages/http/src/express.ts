/**
 * Express middleware: `app.use(meshlet(mesh))` before your routes, and the server made by
 * `meshletServer(mesh, app)` (or any server you pass to `mesh.attachServer` and
 * `mesh.registerOnListen`). Metrics use Express's route template (`req.baseUrl + req.route.path`),
 * read when the response ends.
 */
import { createServer, type Server, type ServerOptions } from 'node:http'
import type { Application, NextFunction, Request, RequestHandler, Response } from 'express'
import type { Mesh } from '@meshlet/core'
import { HttpInboundCall, httpServerSide, serveInbound, type HttpServerSide } from './inbound.js'
import { meshServerOptions } from './server-defaults.js'

class ExpressCall extends HttpInboundCall {
  readonly #next: NextFunction

  constructor(side: HttpServerSide, req: Request, res: Response, next: NextFunction) {
    super(side, req, res)
    this.#next = next
  }

  route(): string | undefined {
    const req = this.req as Request
    const path = (req.route as { path?: unknown } | undefined)?.path
    return typeof path === 'string' ? req.baseUrl + path : undefined
  }

  runApp(): void {
    this.runInScope(ExpressCall.#continue)
  }

  static #continue(call: ExpressCall): void {
    call.#next()
  }
}

export function meshlet(mesh: Mesh): RequestHandler {
  const side = httpServerSide(mesh)
  return (req: Request, res: Response, next: NextFunction) => serveInbound(new ExpressCall(side, req, res, next))
}

/**
 * `http.createServer(app)`, attached to the mesh as it is made (drained by mesh.close() and
 * SIGTERM, even if no request ever came) and registered with the control endpoint once it listens.
 * The app must use `meshlet(mesh)`.
 */
export function meshletServer(mesh: Mesh, app: Application, options: ServerOptions = {}): Server {
  const server = createServer(meshServerOptions(options), app)
  mesh.attachServer(server)
  mesh.registerOnListen(server)
  return server
}

export default meshlet
