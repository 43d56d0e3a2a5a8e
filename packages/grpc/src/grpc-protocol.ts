/**
 * The grpc-js transport for the core's client stack: the terminal service that sends one attempt
 * (a real grpc-js call pinned, through the call registry and the meshlet picker, to the endpoint
 * the stack picked), and what the stack reads and writes on gRPC: metadata, `grpc-timeout`,
 * statuses, `grpc-retry-pushback-ms`, the load report in the trailers, `rpc.client.call.duration`.
 */
import { attemptExpired, ErrorCodes, grpcStatusOf, isMeshletError, LOAD_HEADER, MeshletError, MIRROR_HEADER, parseLoadHeader, type ClientProtocol, type EndpointState, type Mesh } from '@meshlet/core'
import { Metadata, status as Status } from '@grpc/grpc-js'
import type { InterceptingCallInterface } from '@grpc/grpc-js/build/src/client-interceptors.js'
import { track, untrack } from './call-registry.js'
import { usableFor } from './connectivity.js'
import { GrpcAttempt, type GrpcCall } from './grpc-call.js'
import { rpcMetrics } from './grpc-metrics.js'
import { grpcClassifier } from './grpc-status.js'
import { ROUTE_REVISION_KEY, statusForHttp } from './routing.js'

const PUSHBACK_KEY = 'grpc-retry-pushback-ms'

/** The gRPC status a failed call ends with for the caller. */
export function statusOfError(err: unknown): { code: Status; details: string } {
  if (isMeshletError(err)) return { code: grpcStatusOf(err.code) as number as Status, details: err.message }
  return { code: Status.UNAVAILABLE, details: `meshlet: ${(err as Error)?.message ?? String(err)}` }
}

/** A gRPC A6 pushback: a wait in ms, or Infinity for "do not retry" (a negative or malformed value). */
function pushback(res: GrpcAttempt): number | undefined {
  const v = res.status?.metadata.get(PUSHBACK_KEY)[0]
  if (v === undefined) return undefined
  return typeof v === 'string' && /^\d{1,9}$/.test(v) ? Number(v) : Infinity
}

const protocols = new WeakMap<Mesh, ClientProtocol<GrpcCall, GrpcAttempt>>()

/** The mesh's gRPC protocol (one per mesh, so every client of a destination shares its stack). */
export function grpcProtocol(mesh: Mesh): ClientProtocol<GrpcCall, GrpcAttempt> {
  let p = protocols.get(mesh)
  if (p === undefined) protocols.set(mesh, (p = newGrpcProtocol(mesh)))
  return p
}

function newGrpcProtocol(mesh: Mesh): ClientProtocol<GrpcCall, GrpcAttempt> {
  const metrics = rpcMetrics(mesh)
  return {
    name: 'grpc',
    classifier: grpcClassifier,
    endpoint: (call, ctx) =>
      new Promise((resolve, reject) => {
        if (call.cancelled !== undefined || call.done) return reject(new MeshletError(ErrorCodes.CANCELLED, `Call to "${call.service}" was cancelled by its caller.`))
        const budget = Math.min(ctx.deadline, ctx.attemptDeadline) - Date.now()
        if (budget <= 0) return reject(attemptExpired(ctx))
        // Only a per-try timeout needs a timer of ours; grpc-js ends the call at its deadline.
        new GrpcAttempt(call, resolve, reject).start(ctx, ctx.endpoint!, ctx.attemptDeadline < ctx.deadline ? budget : undefined, attemptExpired, ROUTE_REVISION_KEY)
      }),
    // A request stream past MAX_KEPT_MESSAGES, or a call already committed to a response, is not sent again.
    canResend: (call) => call.kept !== undefined && !call.done,
    discard: (res) => res.discard(),
    retryAfter: pushback,
    reportedLoad: (res) => parseLoadHeader(res.status?.metadata.get(LOAD_HEADER)[0] as string | undefined),
    setHeader: (call, name, value) => call.metadata.set(name, value),
    // grpc-timeout: grpc-js sends it for every attempt from the call options' deadline.
    writeDeadline: (call, deadline) => {
      call.options.deadline = deadline
    },
    recordDuration: (call, ctx, res, err, seconds) => {
      const code = res !== undefined ? (res.status?.code ?? Status.OK) : err !== undefined ? statusOfError(err).code : Status.OK
      metrics.client.record(seconds, metrics.attributes('c', call.path, code, ctx.service))
    },
    requestInfo: (call) => ({ method: 'POST', path: call.path, query: '', header: (name) => call.header(name) }),
    abortResponse: (call, status) =>
      GrpcAttempt.synthetic(call, { code: statusForHttp(status), details: `Fault injected by a route of "${call.service}" (abort with HTTP status ${status}).`, metadata: new Metadata() }),
    mirror: (call, endpoint) => mirrorCall(call, endpoint),
    usable: (call) => usableFor(call.dest),
    whenEnded: (res, ended) => res.whenEnded(ended),
  }
}

/**
 * A fire-and-forget copy of a unary-request call to `shadow`: marked, pinned there, never retried,
 * its answer read and dropped (a streamed one too, so the copy does not stall its stream).
 */
function mirrorCall(call: GrpcCall, shadow: EndpointState): void {
  if (call.requestStream) return
  const md = call.metadata.clone()
  md.set(MIRROR_HEADER, '1')
  if (shadow.address.revision !== undefined) md.set(ROUTE_REVISION_KEY, shadow.address.revision)
  let copy: InterceptingCallInterface
  try {
    copy = call.nextCall(call.options)
  } catch {
    return // the channel is closed: the call itself fails with UNAVAILABLE
  }
  const id = track(md, shadow)
  const streamed = call.responseStream
  copy.start(md, { onReceiveMessage: streamed ? () => copy.startRead() : undefined, onReceiveStatus: () => untrack(id) })
  copy.startRead()
  call.shadow = copy
  for (const m of call.kept ?? []) copy.sendMessageWithContext({}, m)
  if (call.halfClosed) copy.halfClose()
}
