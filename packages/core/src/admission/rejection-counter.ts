/**
 * Inbound refusals by reason: the `meshlet.admission.rejected` metric and the counts inspect()
 * shows. Reasons: draining, bad_header, deadline (before or while queued), concurrency (limit and
 * queue full), queue_timeout, rate_limit, rate_limit_caller, overload.
 */
import type { MeshMetrics } from '../telemetry/metrics.js'

export class RejectionCounter {
  readonly #metrics: MeshMetrics
  readonly #counts = new Map<string, number>()

  constructor(metrics: MeshMetrics) {
    this.#metrics = metrics
  }

  count(reason: string): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1)
    this.#metrics.admissionRejected.add(1, this.#metrics.attributes(`a:${reason}`, () => ({ 'meshlet.rejection.reason': reason })))
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#counts)
  }
}
