/**
 * The embedded broker's part of the control API:
 *
 *   POST    /v1/ingress/{namespace}/{broker}       CloudEvents (binary, structured, batch) → 202 once durable (join)
 *   OPTIONS /v1/ingress/{namespace}/{broker}       the CloudEvents webhook handshake (abuse protection), no token
 *   GET     /v1/status/triggers[/{namespace}]      every effective trigger: resource or advertised, ready, lag, counters (join)
 *   GET     /v1/status/brokers[/{namespace}]       brokers with their backend's figures (join)
 *   GET     /v1/triggers/{namespace}/{name}/status one trigger's status (join)
 *
 * Ingress answers: 202 with `{ accepted, dropped }` (dropped: a spent `knativebrokerttl`), 400 with
 * the codec's reason for an event it cannot read, 413 above the size limit, 415 for a body that is
 * not a CloudEvent, 404 for a broker that does not exist (`default` always does), 405 otherwise,
 * 503 when the backend cannot store the events (nothing was stored: publish again).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ControlErrorCodes, ErrorCodes, isDnsLabel, isMeshletError, type ControlErrorCode } from '@meshlet/core'
import { decodeHttpEvents, type BrokerService } from '@meshlet/events'
import type { Role } from '../auth/tokens.js'
import { badRequest, ControlError, notFound } from '../errors.js'
import type { Logger } from '../logger.js'
import { sendJson } from './http-io.js'

export interface BrokerRoutesOptions {
  readonly broker: BrokerService
  /** Throws the control endpoint's 401/403 unless the request carries a token of `role` (or admin). */
  readonly authorize: (req: IncomingMessage, role: Role) => void
  /** The largest ingress request body (a batch may hold several events). Default 4 × the broker's maxEventSize. */
  readonly maxRequestBytes?: number
  readonly log: Logger
}

export class BrokerRoutes {
  readonly #o: BrokerRoutesOptions
  readonly #maxRequestBytes: number

  constructor(options: BrokerRoutesOptions) {
    this.#o = options
    this.#maxRequestBytes = options.maxRequestBytes ?? 4 * options.broker.maxEventSize
  }

  /** Whether `segments` (the path after /v1) is one of the broker's; handles it if so. */
  owns(segments: readonly string[]): boolean {
    const [first, , , last] = segments
    return first === 'ingress' || (first === 'status' && (segments[1] === 'triggers' || segments[1] === 'brokers')) || (first === 'triggers' && segments.length === 4 && last === 'status')
  }

  async handle(req: IncomingMessage, res: ServerResponse, method: string, segments: readonly string[]): Promise<void> {
    const [first, ...rest] = segments
    if (first === 'ingress') return this.#ingress(req, res, method, rest)
    if (method !== 'GET') throw methodNotAllowed(res, method, ['GET'])
    this.#o.authorize(req, 'join')
    if (first === 'triggers') {
      const [namespace, name] = rest as [string, string]
      checkName(namespace, 'namespace')
      checkName(name, 'name')
      const status = await this.#o.broker.trigger(namespace, name)
      if (status === undefined) throw notFound(`trigger ${namespace}/${name} does not exist: no Trigger resource and no live instance advertises it (meshlet get triggers -n ${namespace} lists them)`)
      return sendJson(res, 200, status)
    }
    const [what, namespace, ...more] = rest
    if (more.length > 0) throw notFound(`no such endpoint: use /v1/status/${what}[/{namespace}]`)
    if (namespace !== undefined) checkName(namespace, 'namespace')
    const items = what === 'triggers' ? await this.#o.broker.triggers(namespace) : await this.#o.broker.brokers(namespace)
    sendJson(res, 200, { items })
  }

  async #ingress(req: IncomingMessage, res: ServerResponse, method: string, rest: readonly string[]): Promise<void> {
    if (rest.length !== 2) throw notFound('no such endpoint: publish to /v1/ingress/{namespace}/{broker}')
    const [namespace, broker] = rest as [string, string]
    checkName(namespace, 'namespace')
    checkName(broker, 'broker')
    if (method === 'OPTIONS') return webhookHandshake(req, res)
    if (method !== 'POST') throw methodNotAllowed(res, method, ['POST', 'OPTIONS'])
    this.#o.authorize(req, 'join')
    if (!this.#o.broker.brokerExists(namespace, broker)) {
      req.resume()
      throw notFound(`broker ${JSON.stringify(broker)} does not exist in namespace ${namespace}: create a Broker resource of that name, or publish to "default"`)
    }
    const body = await readBody(req, this.#maxRequestBytes)
    let events
    try {
      events = decodeHttpEvents({ headers: req.headers, body }, { maxEventSize: this.#o.broker.maxEventSize }).events
    } catch (err) {
      throw asControlError(err, ErrorCodes.EVENT_INVALID)
    }
    let result: { accepted: number; dropped: number }
    try {
      result = await this.#o.broker.accept(namespace, broker, events)
    } catch (err) {
      this.#o.log.error(`the broker could not store ${events.length} event(s) for ${namespace}/${broker}: ${(err as Error)?.message ?? String(err)}`)
      throw asControlError(err, ErrorCodes.BROKER_UNAVAILABLE, `the broker could not store the event(s) (${(err as Error)?.message ?? String(err)}); nothing was stored: publish again later`)
    }
    sendJson(res, 202, result)
  }
}

/**
 * The CloudEvents HTTP webhook handshake (spec: http-webhook.md, "Abuse Protection"): a sender asks
 * with WebHook-Request-Origin whether it may deliver here; the broker takes events from any origin
 * that has the token, at any rate.
 */
function webhookHandshake(req: IncomingMessage, res: ServerResponse): void {
  req.resume()
  const origin = req.headers['webhook-request-origin']
  const headers: Record<string, string> = { allow: 'POST, OPTIONS', 'content-length': '0' }
  if (typeof origin === 'string' && origin !== '') {
    headers['webhook-allowed-origin'] = origin.slice(0, 255)
    headers['webhook-allowed-rate'] = '*'
  }
  res.writeHead(200, headers)
  res.end()
}

/** Reads at most `limit` bytes; over it, 413 without reading the rest (the connection is then closed). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (): ControlError => new ControlError(ControlErrorCodes.EVENT_TOO_LARGE, `the request body is over the ingress's ${limit}-byte limit; publish fewer events per batch, or smaller ones`)
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) throw tooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}

const CONTROL_CODES = new Set<string>(Object.values(ControlErrorCodes))

/** A MeshletError from the codec or the backend as the control endpoint answers it (its code's status). */
function asControlError(err: unknown, fallback: ControlErrorCode, message?: string): ControlError {
  if (err instanceof ControlError) return err
  if (isMeshletError(err) && CONTROL_CODES.has(err.code)) return new ControlError(err.code as ControlErrorCode, message ?? err.message, { cause: err })
  return new ControlError(fallback, message ?? (err as Error)?.message ?? String(err), { cause: err })
}

function checkName(value: string, what: string): void {
  if (!isDnsLabel(value)) throw badRequest(`the ${what} ${JSON.stringify(value.slice(0, 80))} is not a DNS label (lowercase letters, digits and "-", at most 63 characters)`)
}

function methodNotAllowed(res: ServerResponse, method: string, allowed: string[]): ControlError {
  res.setHeader('allow', allowed.join(', '))
  return new ControlError(ControlErrorCodes.METHOD_NOT_ALLOWED, `${method.slice(0, 20)} is not allowed here; use ${allowed.join(', ')}`)
}
