/**
 * The RPC instruments (OpenTelemetry semantic conventions, seconds), made from the mesh's meter so
 * they go wherever its HTTP metrics go. Attribute sets are cached per (side, peer, method, status).
 */
import type { Attributes, Histogram } from '@opentelemetry/api'
import type { Mesh } from '@meshlet/core'
import { status as Status } from '@grpc/grpc-js'
import { splitPath } from './grpc-status.js'

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const noop = { record() {} } as unknown as Histogram
/** Method paths kept per metrics instance (the server sees whatever paths clients send). */
const MAX_PATHS = 1000

export class RpcMetrics {
  readonly client: Histogram
  readonly server: Histogram
  /** Attribute sets by side → peer → method path → status code, each built once: no key string per call. */
  readonly #sets = { c: new Map<string, Map<string, Attributes[]>>(), s: new Map<string, Map<string, Attributes[]>>() }
  #paths = 0

  constructor(mesh: Mesh) {
    const meter = mesh.metrics.meter
    const hist = (name: string, description: string): Histogram =>
      meter ? meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: BUCKETS } }) : noop
    this.client = hist('rpc.client.call.duration', 'Duration of gRPC client calls through the mesh, retries included.')
    this.server = hist('rpc.server.call.duration', 'Duration of gRPC server calls handled by the mesh.')
  }

  attributes(side: 'c' | 's', path: string, code: Status, peer: string | undefined): Attributes {
    const byPeer = this.#sets[side]
    let byPath = byPeer.get(peer ?? '')
    if (byPath === undefined) byPeer.set(peer ?? '', (byPath = new Map()))
    let byCode = byPath.get(path)
    if (byCode === undefined) {
      byCode = []
      // Paths come from the wire on the server side: past the bound, sets are built, not kept.
      if (this.#paths++ < MAX_PATHS) byPath.set(path, byCode)
    }
    return (byCode[code] ??= this.#build(path, code, peer))
  }

  #build(path: string, code: Status, peer: string | undefined): Attributes {
    const [service, method] = splitPath(path)
    return Object.freeze({
      'rpc.system': 'grpc',
      'rpc.service': service,
      'rpc.method': method,
      'rpc.grpc.status_code': code,
      ...(peer !== undefined ? { 'server.address': peer } : {}),
      ...(code !== Status.OK ? { 'error.type': Status[code] ?? String(code) } : {}),
    })
  }
}

const cache = new WeakMap<Mesh, RpcMetrics>()
export function rpcMetrics(mesh: Mesh): RpcMetrics {
  let m = cache.get(mesh)
  if (m === undefined) cache.set(mesh, (m = new RpcMetrics(mesh)))
  return m
}
