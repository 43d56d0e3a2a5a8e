/**
 * A grpc-js Server in the mesh's lifecycle: built with the mesh's server interceptors, drained by
 * mesh.close() (and SIGTERM): tryShutdown stops new calls (GOAWAY) and lets in-flight ones finish
 * within their deadlines and the mesh's drain timeout, then forceShutdown cancels what is left.
 */
import type { DrainableServer, Mesh } from '@meshlet/core'
import { Server, type ServerCredentials, type ServerOptions } from '@grpc/grpc-js'
import { meshServerInterceptors } from './server-interceptors.js'

/** Grace after the latest in-flight deadline before the server is forced down. */
const DEADLINE_GRACE_MS = 100

/** A DrainableServer for mesh.attachServer. */
export function drainableServer(mesh: Mesh, server: Server): DrainableServer {
  let forced = false
  let timer: NodeJS.Timeout | undefined
  const force = () => {
    if (forced) return
    forced = true
    clearTimeout(timer)
    server.forceShutdown()
  }
  return {
    close(callback) {
      let called = false
      const done = (err?: Error) => {
        if (called) return
        called = true
        clearTimeout(timer)
        callback?.(err)
      }
      server.tryShutdown(done)
      // Every in-flight call has a deadline: nothing is worth waiting for past the latest one.
      const latest = mesh.inbound.latestDeadline()
      if (latest > 0 && latest !== Infinity) {
        timer = setTimeout(() => {
          force()
          done()
        }, latest - Date.now() + DEADLINE_GRACE_MS)
        timer.unref()
      }
    },
    closeAllConnections: force,
  }
}

/** Attaches a grpc-js Server so that mesh.close() drains it. */
export function attachGrpcServer(mesh: Mesh, server: Server): void {
  mesh.attachServer(drainableServer(mesh, server))
}

/** `new grpc.Server(options)` with the mesh's server interceptors first, attached for draining. */
export function createGrpcServer(mesh: Mesh, options: ServerOptions = {}): Server {
  const server = new Server({ ...options, interceptors: [...meshServerInterceptors(mesh), ...(options.interceptors ?? [])] })
  attachGrpcServer(mesh, server)
  return server
}

/**
 * Binds `server` and, when the mesh follows a control endpoint, registers this instance with
 * protocol `grpc`. Resolves to the bound port.
 */
export function bindGrpcServer(mesh: Mesh, server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)))
  }).then(async (port) => {
    if (mesh.controlled) await mesh.register({ port, protocols: ['grpc'] })
    return port
  })
}
