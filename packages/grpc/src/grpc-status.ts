/**
 * What a gRPC status means to the mesh: one classifier for the balancer's outcome feedback, the
 * breaker and metrics (DESIGN §3), plus the retry rules that service config expresses.
 */
import { Classification, REJECTED_HEADER, type CallContext, type ResponseClassifier } from '@meshlet/core'
import { status as Status, type Metadata } from '@grpc/grpc-js'

/** How a call ended, as the client interceptor and the picker see it. */
export interface CallOutcome {
  readonly code: Status
  readonly details: string
  readonly metadata: Metadata
}

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

export const grpcClassifier: ResponseClassifier<unknown, CallOutcome> = {
  response(_req: unknown, ctx: CallContext, res: CallOutcome): Classification {
    const cls = classifyStatus(res.code)
    if (cls !== Classification.Failure) return cls
    if (isRejected(res.metadata)) return Classification.RetryableFailure
    return (ctx.idempotent ? IDEMPOTENT_RETRYABLE : DEFAULT_RETRYABLE).includes(res.code) ? Classification.RetryableFailure : Classification.Failure
  },
  error: () => Classification.Failure,
  refused: (_req: unknown, _ctx: CallContext, res: CallOutcome): boolean => isRejected(res.metadata),
}

/** `/pkg.Service/Method` → ['pkg.Service', 'Method']. */
export function splitPath(path: string): [service: string, method: string] {
  const i = path.lastIndexOf('/')
  return i <= 0 ? ['', path.replace(/^\//, '')] : [path.slice(1, i), path.slice(i + 1)]
}
