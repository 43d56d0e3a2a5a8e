/**
 * What a gRPC status means to the mesh: one classifier for the client stack's retry, breaker,
 * balancer and metrics (DESIGN §3), with the statuses it retries for every method and for methods
 * marked idempotent.
 */
import { Classification, ErrorCodes, isMeshletError, REJECTED_HEADER, type ResponseClassifier } from '@meshlet/core'
import { status as Status, type Metadata } from '@grpc/grpc-js'
import type { GrpcAttempt, GrpcCall } from './grpc-call.js'

/** Trailing-metadata key marking a refusal made before any processing (any method may retry it). */
export const REJECTED_KEY = REJECTED_HEADER

/** Retried for every method: the server did not process the call. */
export const DEFAULT_RETRYABLE: readonly Status[] = [Status.UNAVAILABLE]
/** Also retried for methods marked idempotent. Never DEADLINE_EXCEEDED. */
export const IDEMPOTENT_RETRYABLE: readonly Status[] = [Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.INTERNAL, Status.UNKNOWN]

/** Statuses that say the endpoint is unwell (or slow); the others are the application answering. */
const ENDPOINT_FAILURES = new Set<Status>([Status.UNAVAILABLE, Status.INTERNAL, Status.UNKNOWN, Status.RESOURCE_EXHAUSTED, Status.DEADLINE_EXCEEDED, Status.DATA_LOSS])

export function isRejected(metadata: Metadata | null | undefined): boolean {
  return metadata?.get(REJECTED_KEY)[0] === '1'
}

/** Endpoint health: success, failure, or nothing to learn (the caller cancelled). */
export function classifyStatus(code: Status): Classification {
  if (code === Status.OK) return Classification.Success
  if (code === Status.CANCELLED) return Classification.Ignorable
  return ENDPOINT_FAILURES.has(code) ? Classification.Failure : Classification.Success
}

/**
 * The client stack's classifier for gRPC. An attempt resolved at its response headers (a stream)
 * has no status yet: it succeeded so far. A call the caller cancelled, a closed client, an open
 * breaker and "no endpoint" say nothing of an endpoint's health.
 */
export const grpcClassifier: ResponseClassifier<GrpcCall, GrpcAttempt> = {
  response(call, ctx, res) {
    if (call.cancelled !== undefined || ctx.signal?.aborted === true) return Classification.Ignorable
    const s = res.status
    if (s === undefined) return Classification.Success
    const cls = classifyStatus(s.code)
    if (cls !== Classification.Failure) return cls
    if (isRejected(s.metadata)) return Classification.RetryableFailure
    return (ctx.idempotent ? IDEMPOTENT_RETRYABLE : DEFAULT_RETRYABLE).includes(s.code) ? Classification.RetryableFailure : Classification.Failure
  },
  error(call, ctx, err) {
    if (call.cancelled !== undefined || ctx.signal?.aborted === true) return Classification.Ignorable
    if (!isMeshletError(err)) return Classification.Failure
    if (err.rejected) return Classification.RetryableFailure
    if (err.code === ErrorCodes.DEADLINE) return err.retryable && ctx.idempotent ? Classification.RetryableFailure : Classification.Failure
    return err.code === ErrorCodes.CLOSED || err.code === ErrorCodes.CANCELLED || err.code === ErrorCodes.NO_ENDPOINT || err.code === ErrorCodes.BREAKER_OPEN ? Classification.Ignorable : Classification.Failure
  },
  refused: (_call, _ctx, res) => isRejected(res.status?.metadata),
}

/** `/pkg.Service/Method` → ['pkg.Service', 'Method']. */
export function splitPath(path: string): [service: string, method: string] {
  const i = path.lastIndexOf('/')
  return i <= 0 ? ['', path.replace(/^\//, '')] : [path.slice(1, i), path.slice(i + 1)]
}
