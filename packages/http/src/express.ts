/**
 * Express middleware: `app.use(meshlet(mesh))` before your routes. Metrics use Express's route
 * template (`req.baseUrl + req.route.path`), read when the response ends.
 */
import type { Server } from 'node:http'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { callScope, ErrorCodes, isMeshletError, withTraceContext, type Mesh } from '@meshlet/core'
import { admitInbound } from './inbound.js'

function routeOf(req: Request): string | undefined {
  const path = (req.route as { path?: unknown } | undefined)?.path
  return typeof path === 'string' ? req.baseUrl + path : undefined
}

export function meshlet(mesh: Mesh): RequestHandler {
  const attached = new WeakSet<Server>()
  return (req: Request, res: Response, next: NextFunction) => {
    // The server is known only once a request arrives through it; from then on the mesh drains it.
    const server = (req.socket as { server?: Server }).server
    if (server !== undefined && !attached.has(server)) {
      attached.add(server)
      try {
        mesh.attachServer(server)
      } catch (err) {
        // First request after close() began: too late to drain this server, but the request must
        // still get the mesh's answer (served, or a 503 refusal), not a 500 from this throw.
        if (!isMeshletError(err) || err.code !== ErrorCodes.CLOSED) throw err
      }
    }
    admitInbound(mesh, req, res, () => routeOf(req), (inbound) => callScope.run(inbound.scope, () => withTraceContext(inbound.trace, next)))
  }
}

export default meshlet
