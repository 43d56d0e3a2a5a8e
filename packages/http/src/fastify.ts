/**
 * Fastify plugin: `await app.register(meshlet, { mesh })`. Uses Fastify's route template
 * (`request.routeOptions.url`) for metrics, and drains through `fastify.close()`.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { REJECTED_HEADER, type Mesh, type Refusal } from '@meshlet/core'
import { HttpInboundCall, httpServerSide, serveInbound, type HttpServerSide } from './inbound.js'

export interface MeshletFastifyOptions {
  mesh: Mesh
}

declare module 'fastify' {
  interface FastifyRequest {
    mesh: Mesh | null
  }
}

class FastifyCall extends HttpInboundCall {
  readonly #request: FastifyRequest
  readonly #reply: FastifyReply
  readonly #next: HookHandlerDoneFunction

  constructor(side: HttpServerSide, request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    super(side, request.raw, reply.raw)
    this.#request = request
    this.#reply = reply
    this.#next = next
  }

  route(): string | undefined {
    return this.#request.routeOptions.url
  }

  /** Written on the raw response: Fastify is told to keep out of it. */
  override writeRefusal(refusal: Refusal): void {
    this.#reply.hijack()
    super.writeRefusal(refusal)
  }

  runApp(): void {
    this.runInScope(FastifyCall.#continue)
  }

  static #continue(call: FastifyCall): void {
    call.#next()
  }
}

const plugin: FastifyPluginCallback<MeshletFastifyOptions> = (fastify, { mesh }, done) => {
  const side = httpServerSide(mesh)
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
    serveInbound(new FastifyCall(side, request, reply, next))
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
