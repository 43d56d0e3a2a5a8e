/**
 * The client interceptor: hands each call on a `meshlet:///<service>` channel to the mesh's client
 * stack for that destination (route → deadline → trace → mirror → retry → breaker → pick → per-try
 * timeout, the same stack HTTP calls run), with the gRPC protocol (grpc-protocol.ts) at its bottom.
 * Each attempt is a real grpc-js call pinned to the endpoint the stack picked; grpc-js's own retries
 * are off on these channels, so there is one retry policy and one budget.
 */
import type { Mesh } from '@meshlet/core'
import { InterceptingCall, Metadata, type CallOptions, type ClientOptions, type Interceptor, type InterceptorOptions } from '@grpc/grpc-js'
import type { NextCall } from '@grpc/grpc-js/build/src/client-interceptors.js'
import { GrpcCall } from './grpc-call.js'
import { grpcProtocol, statusOfError } from './grpc-protocol.js'
import { registrationOf } from './registry.js'
import { MESH_ARG } from './resolver-meshlet.js'

/** True when `path` (`/pkg.Service/Method`) is listed, by method or by service, as idempotent. */
export function isIdempotentPath(list: readonly string[] | undefined, path: string): boolean {
  if (list === undefined || list.length === 0) return false
  const service = path.slice(1, path.lastIndexOf('/'))
  for (const n of list) if (n === path || n === service || n === `/${service}` || `/${n}` === path) return true
  return false
}

/** What a call's method path decides, worked out once per path. */
interface PathFacts {
  /** The registration `idempotent` was read from (register() may be called again). */
  readonly registration: ReturnType<typeof registrationOf>
  readonly idempotent: boolean
}

/** The mesh's client interceptors for calls to the mesh service `service`. */
export function meshInterceptors(mesh: Mesh, service: string): Interceptor[] {
  const protocol = grpcProtocol(mesh)
  const paths = new Map<string, PathFacts>()
  const factsOf = (path: string): PathFacts => {
    const registration = registrationOf(mesh)
    let f = paths.get(path)
    if (f === undefined || f.registration !== registration) {
      f = { registration, idempotent: isIdempotentPath(registration?.idempotent, path) }
      if (paths.size < 1000) paths.set(path, f)
    }
    return f
  }
  const run = (call: GrpcCall): void => {
    const dest = call.dest
    const ctx = dest.newContext(factsOf(call.path).idempotent)
    const deadline = call.options.deadline
    // The caller's own deadline counts too (grpc-js's `deadline` call option).
    if (deadline !== undefined) ctx.deadline = Math.min(ctx.deadline, deadline instanceof Date ? deadline.getTime() : deadline)
    dest.stack(protocol)(call, ctx).then(
      (res) => res.deliver(),
      (err: unknown) => call.finish({ ...statusOfError(err), metadata: new Metadata() }),
    )
  }
  const interceptor: Interceptor = (options: InterceptorOptions, nextCall: NextCall) => {
    const dest = mesh.destination(service)
    if (dest === undefined) return new InterceptingCall(nextCall(options))
    // grpc-js uses only the InterceptingCallInterface methods of what an interceptor returns; an
    // InterceptingCall around it would add a requester layer that does nothing here.
    return new GrpcCall(service, dest, options, nextCall, run) as unknown as InterceptingCall
  }
  return [interceptor]
}

/**
 * Client options for `new Client('meshlet:///<service>', credentials, options)`: the mesh's
 * interceptors first, then any in `options`; the target resolves through this mesh (call
 * register(mesh) first).
 */
export function meshClientOptions(mesh: Mesh, service: string, options: ClientOptions = {}): ClientOptions {
  if (options.interceptor_providers?.length) throw new TypeError('meshClientOptions: pass `interceptors`, not `interceptor_providers` (grpc-js allows only one of the two).')
  const reg = registrationOf(mesh)
  // grpc-js's own retries off: the stack retries (grpc-js would otherwise also run every call as a
  // retrying call that buffers its messages, for retries it is never configured to make).
  return { 'grpc.enable_retries': 0, ...options, ...(reg !== undefined ? { [MESH_ARG]: reg.id } : {}), interceptors: [...meshInterceptors(mesh, service), ...(options.interceptors ?? [])] }
}

/**
 * Call options with per-call `interceptors` that keep the mesh's: grpc-js replaces the client's
 * interceptors with a call's own, which would silently drop deadline, breaker and metrics.
 */
export function meshCallOptions(mesh: Mesh, service: string, options: CallOptions = {}): CallOptions {
  if (!options.interceptors?.length && !options.interceptor_providers?.length) return options
  if (options.interceptor_providers?.length) throw new TypeError('meshCallOptions: pass `interceptors`, not `interceptor_providers` (grpc-js allows only one of the two).')
  return { ...options, interceptors: [...meshInterceptors(mesh, service), ...options.interceptors!] }
}
