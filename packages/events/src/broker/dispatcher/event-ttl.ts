/**
 * Knative's broker TTL (knative/eventing pkg/broker/ttl.go): the `knativebrokerttl` extension counts
 * how many more times an event may pass through a broker. The ingress sets it when absent; each
 * reply re-enqueued by the dispatcher carries the delivered event's TTL minus one; an event whose TTL
 * is spent is dropped, so a subscriber that replies to its own events cannot loop forever.
 */
export const TTL_EXTENSION = 'knativebrokerttl'
/** What the ingress gives an event that arrives without a TTL (Knative's default). */
export const DEFAULT_BROKER_TTL = 255

/** The event's TTL: a non-negative integer, undefined when absent; an unreadable value counts as spent (0). */
export function brokerTtl(event: Record<string, unknown>): number | undefined {
  const v = event[TTL_EXTENSION]
  if (v === undefined || v === null) return undefined
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d{1,10}$/.test(v.trim()) ? Number(v) : Number.NaN
  return Number.isInteger(n) ? Math.max(0, n) : 0
}
