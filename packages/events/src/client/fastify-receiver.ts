/**
 * The receivers as a Fastify plugin: `await app.register(ev.fastify)` adds
 * `POST /_meshlet/events/:name`. The plugin is encapsulated on purpose: inside it every content
 * type is read as a raw Buffer (up to the event size limit, else Fastify's 413), so the codec sees
 * the delivery exactly as sent, while the app's own parsers stay as they are. Registered after
 * `@meshlet/http/fastify`'s `meshlet` plugin, the route runs in the mesh's server stack.
 *
 * Typed structurally, so @meshlet/events does not depend on Fastify.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { ReceiverHost } from './node-receiver.js'

interface FastifyRequestLike {
  readonly params: unknown
  readonly headers: IncomingHttpHeaders
  readonly body: unknown
  readonly raw: { once(event: 'close', cb: () => void): unknown }
}

interface FastifyReplyLike {
  code(status: number): FastifyReplyLike
  headers(values: Record<string, string>): FastifyReplyLike
  send(payload?: unknown): FastifyReplyLike
  readonly raw: { readonly writableFinished: boolean; once(event: 'close', cb: () => void): unknown }
}

/** The part of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  removeAllContentTypeParsers(): void
  addContentTypeParser(type: string, options: { parseAs: 'buffer'; bodyLimit?: number }, parser: (req: unknown, body: Buffer, done: (err: Error | null, body?: unknown) => void) => void): void
  post(path: string, options: { bodyLimit?: number }, handler: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown
}

export type EventsFastifyPlugin = (instance: FastifyInstanceLike, options: unknown, done: (err?: Error) => void) => void

export function fastifyPlugin(host: ReceiverHost): EventsFastifyPlugin {
  const plugin: EventsFastifyPlugin = (fastify, _options, done) => {
    fastify.removeAllContentTypeParsers()
    fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: host.maxEventSize }, (_req, body, next) => next(null, body))
    fastify.post('/_meshlet/events/:name', { bodyLimit: host.maxEventSize }, async (request, reply) => {
      const ac = new AbortController()
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) ac.abort()
      })
      const body = request.body instanceof Uint8Array ? request.body : new Uint8Array(0)
      const answer = await host.deliver((request.params as { name: string }).name, { headers: request.headers, body }, ac.signal)
      return reply.code(answer.status).headers(answer.headers).send(typeof answer.body === 'string' ? answer.body : Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength))
    })
    done()
  }
  // The name Fastify shows for the plugin (what fastify-plugin's `name` sets; here without its dependency).
  ;(plugin as unknown as Record<symbol, string>)[Symbol.for('fastify.display-name')] = '@meshlet/events'
  return plugin
}
