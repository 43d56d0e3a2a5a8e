/**
 * Fastify plugin: `await app.register(meshlet, { mesh })`. Uses Fastify's route template
 * (`request.routeOptions.url`) for metrics, and drains through `fastify.close()`.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginCallback } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { callScope, REJECTED_HEADER, withTraceContext, type Mesh } from '@meshlet/core'
import { admitInbound } from './inbound.js'

export interface MeshletFastifyOptions {
  mesh: Mesh
}

declare module 'fastify' {
  interface FastifyRequest {
    mesh: Mesh | null
  }
}

const plugin: FastifyPluginCallback<MeshletFastifyOptions> = (fastify, { mesh }, done) => {
  fastify.decorateRequest('mesh', null)
  mesh.attachServer({
    close: (cb) => void fastify.close().then(() => cb?.(), cb),
    closeIdleConnections: () => fastify.server.closeIdleConnections(),
    closeAllConnections: () => fastify.server.closeAllConnections(),
  })
  // While closing, Fastify answers new requests with its own 503 (return503OnClosing) before any
  // hook runs; mark those as not processed too, so clients may retry them elsewhere, even a POST.
  fastify.server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (!mesh.inbound.accepting) res.setHeader(REJECTED_HEADER, '1')
  })
  mesh.registerOnListen(fastify.server)
  fastify.addHook('onRequest', (request, reply, next) => {
    request.mesh = mesh
    admitInbound(
      mesh,
      request.raw,
      reply.raw,
      () => request.routeOptions.url,
      (inbound) => callScope.run(inbound.scope, () => withTraceContext(inbound.trace, next)),
      () => reply.hijack(),
    )
  })
  // fastify.close() called by the app (not through mesh.close()) still refuses new requests first.
  fastify.addHook('preClose', (next) => {
    mesh.inbound.stopAccepting()
    next()
  })
  done()
}

export const meshlet = fp(plugin, { name: '@meshlet/http/fastify', fastify: '5.x' })
export default meshlet
