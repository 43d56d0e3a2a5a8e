/**
 * One classifier decides what a result means for retries, the breaker, outlier detection and
 * metrics alike (Finagle's ResponseClassifier), so they never disagree.
 */

export const Classification = {
  /** Counts as a success for health and metrics. */
  Success: 0,
  /** Failed, and may be retried (subject to budget, attempts and deadline). */
  RetryableFailure: 1,
  /** Failed; do not retry. */
  Failure: 2,
  /** Says nothing about the endpoint's health (the caller cancelled, the deadline was the caller's). */
  Ignorable: 3,
} as const
export type Classification = (typeof Classification)[keyof typeof Classification]

export interface StackClassifier<Req, Res, Ctx> {
  response(req: Req, ctx: Ctx, res: Res): Classification
  error(req: Req, ctx: Ctx, err: unknown): Classification
  /**
   * True when the endpoint declined the request before processing it (`meshlet-rejected`: admission,
   * rate limit, drain). Such a refusal steers the balancer and is retried elsewhere, but says nothing
   * of the destination's health: it never counts against the breaker, so instances shedding load or
   * draining in a rolling deploy cannot open it while others serve.
   */
  refused?(req: Req, ctx: Ctx, res: Res): boolean
}
