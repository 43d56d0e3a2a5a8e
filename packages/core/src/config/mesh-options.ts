/**
 * The options of `createMesh`: their schema, their defaults, and the effective policy of each
 * destination (defaults < `defaults` < `services.<name>`).
 */
import { ConfigError, type ConfigIssue } from '../errors.js'
import { checkRouteRules, routeRuleSchema } from '../routing/route-spec.js'
import * as s from './schema.js'
import { admissionIssues, admissionSchema } from '../admission/admission-options.js'

/** A DNS label: the shape of every service, namespace, revision and resource name. */
export const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
export const NAME_HINT = 'a DNS label (lowercase letters, digits and "-", at most 63 characters, starting and ending with a letter or digit)'
const ENDPOINT = /^(https?|dns):\/\/[^\s/?#]+\/?$/
const ENDPOINT_HINT = 'an endpoint URL like "http://127.0.0.1:3001", "https://10.0.0.7:8443" or "dns://payments.internal:8080" (scheme, host and port; no path)'

export const balancerTypes = ['p2c-peak-ewma', 'round-robin', 'least-request', 'ring-hash'] as const
export type BalancerType = (typeof balancerTypes)[number]

const retriesSchema = s.object({
  attempts: s.number({ integer: true, min: 0, max: 10, description: 'Retries after the first attempt (Istio semantics). Default 2.' }),
  perTryTimeout: s.duration({ min: 1, description: 'Timeout of each attempt until response headers. Default: none (the call timeout applies).' }),
  backoff: s.object({ base: s.duration({ min: 0, max: 60_000 }), max: s.duration({ min: 0, max: 300_000 }) }),
  budget: s.object({
    percent: s.number({ min: 0, max: 100, description: 'Retries allowed as a percent of requests. Default 20.' }),
    minPerSecond: s.number({ min: 0, max: 1_000_000, description: 'Retries always allowed per second. Default 10.' }),
    ttl: s.duration({ min: 1000, max: 60_000, description: 'Window over which requests are counted. Default 10s.' }),
  }),
})

const breakerSchema = s.object({
  errorThreshold: s.number({ min: 1, max: 100, description: 'Percent of failed calls in the window that opens the breaker. Default 50.' }),
  volumeThreshold: s.number({ integer: true, min: 1, max: 1_000_000, description: 'Calls needed in the window before it may open. Default 20.' }),
  window: s.duration({ min: 100, description: 'Rolling window. Default 10s.' }),
  resetTimeout: s.duration({ min: 1, description: 'Time open before a half-open probe. Default 5s.' }),
})

const outlierSchema = s.object({
  consecutiveFailures: s.number({ integer: true, min: 1, max: 1000, description: 'Consecutive failures that eject an endpoint. Default 5.' }),
  interval: s.duration({ min: 10, description: 'Sweep interval that decays repeat-ejection multipliers. Default 10s.' }),
  baseEjectionTime: s.duration({ min: 1, description: 'Ejection time; multiplied by the number of ejections. Default 30s.' }),
  maxEjectionTime: s.duration({ min: 1, description: 'Cap on the ejection time. Default 300s.' }),
  maxEjectionPercent: s.number({ min: 0, max: 100, description: 'At most this percent of endpoints is ejected (at least one, never all). Default 50.' }),
})

const balancerSchema = s.either(
  { when: (v) => typeof v === 'string', schema: s.oneOf(balancerTypes) },
  s.object(
    {
      type: s.oneOf(balancerTypes),
      decay: s.duration({ min: 1, description: 'Peak-EWMA decay time. Default 10s.' }),
      failurePenalty: s.duration({ min: 0, description: 'Latency charged for a failure, so fast failures do not attract traffic. Default 1s.' }),
      hashHeader: s.string({ pattern: /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/, patternHint: 'a lowercase HTTP header name', description: 'ring-hash: the request header whose value picks the endpoint (cache affinity).' }),
      loadFactor: s.number({ min: 1, max: 10, description: 'ring-hash: an endpoint takes at most this times the average in-flight load before keys spill to the next one (bounded load). Default 1.25.' }),
    },
    { required: ['type'] },
  ),
)

const endpointSchema = s.either(
  { when: (v) => typeof v === 'string', schema: s.string({ pattern: ENDPOINT, patternHint: ENDPOINT_HINT, maxLength: 2048 }) },
  s.object(
    {
      url: s.string({ pattern: ENDPOINT, patternHint: ENDPOINT_HINT, maxLength: 2048 }),
      zone: s.string({ maxLength: 128 }),
      revision: s.string({ pattern: NAME, patternHint: NAME_HINT }),
    },
    { required: ['url'] },
  ),
)

/** The policy fields shared by mesh options (`defaults`, `services.<name>`) and the ServicePolicy resource. */
export const policyFields = {
  timeout: s.either({ when: (v) => v === false, schema: s.literal(false) }, s.duration({ min: 1, description: 'Call timeout until response headers, retries included. Default 15s.' })),
  retries: s.either({ when: (v) => v === false, schema: s.literal(false) }, retriesSchema),
  balancer: balancerSchema,
  breaker: s.either({ when: (v) => v === false, schema: s.literal(false) }, breakerSchema),
  outlier: s.either({ when: (v) => v === false, schema: s.literal(false) }, outlierSchema),
}

const serviceSchema = s.object(
  {
    endpoints: s.array(endpointSchema, { minItems: 1, maxItems: 10_000 }),
    ...policyFields,
    routes: s.array(routeRuleSchema, { maxItems: 64, description: 'Route rules (as in a Route resource\'s spec.rules), tried in order.' }),
  },
  { required: ['endpoints'] },
)

export const meshOptionsSchema = s.object(
  {
    service: s.string({ pattern: NAME, patternHint: NAME_HINT, description: 'This service\'s name.' }),
    namespace: s.string({ pattern: NAME, patternHint: NAME_HINT }),
    revision: s.string({ pattern: NAME, patternHint: NAME_HINT }),
    zone: s.string({ maxLength: 128 }),
    services: s.record(s.string({ pattern: NAME, patternHint: NAME_HINT }), serviceSchema, { maxEntries: 10_000 }),
    defaults: s.object(policyFields, { description: 'Policy for every destination; `services.<name>` overrides it field by field.' }),
    drain: s.object({
      delay: s.duration({ description: 'Wait after failing readiness before refusing connections, so peers stop sending. Default 0 (static) .' }),
      timeout: s.duration({ min: 1, description: 'Longest wait for in-flight requests. Default 30s.' }),
    }),
    shutdownSignals: s.either({ when: (v) => v === false, schema: s.literal(false) }, s.array(s.oneOf(['SIGTERM', 'SIGINT', 'SIGHUP'] as const), { maxItems: 3 })),
    dnsRefresh: s.duration({ min: 100, description: 'How often dns:// endpoints are re-resolved. Default 5s.' }),
    control: s.string({ pattern: /^https?:\/\/[^\s/?#]+\/?$/, patternHint: 'the control endpoint\'s URL, like "http://127.0.0.1:7070"', maxLength: 2048, description: 'Control endpoint: registry and policy. Omit for static configuration.' }),
    // Sent as `authorization: Bearer <token>`: a space or control character would only fail later, as a bare "cannot reach".
    token: s.string({ maxLength: 4096, minLength: 1, pattern: /^[\x21-\x7e]+$/, patternHint: 'a token of visible ASCII characters (no spaces or control characters: it is sent in the Authorization header)', description: 'Join (or admin) token for the control endpoint.' }),
    cacheDir: s.string({ maxLength: 4096, minLength: 1, description: 'Where the last known good control state is kept, so a restart during an outage still routes.' }),
    snapshotMaxAge: s.duration({ min: 1000, max: 30 * 24 * 3_600_000, description: 'Oldest disk snapshot used at start. Default 24h.' }),
    heartbeatInterval: s.duration({ min: 50, description: 'Lease renewal interval; default a third of the lease.' }),
    leaseTtl: s.duration({ min: 100, max: 3_600_000, description: 'Instance lease time. Default 15s.' }),
    destinationIdleTimeout: s.either(
      { when: (v) => v === false, schema: s.literal(false) },
      s.duration({ min: 1000, max: 7 * 24 * 3_600_000, description: 'A destination created for a service of the control endpoint and unused this long is closed and dropped (made again on next use). Default false: kept.' }),
    ),
    admission: admissionSchema,
  },
  { required: ['service'] },
)

/** What a caller writes: durations as text (`"2s"`) or milliseconds. */
export type MeshOptionsInput = s.InferInput<typeof meshOptionsSchema>
/** Options after validation: durations in milliseconds. */
export type ValidatedMeshOptions = s.Infer<typeof meshOptionsSchema>

export interface RetryPolicy {
  attempts: number
  perTryTimeout: number
  backoffBase: number
  backoffMax: number
  budgetPercent: number
  budgetMinPerSecond: number
  budgetTtl: number
}
export interface BreakerPolicy { errorThreshold: number; volumeThreshold: number; window: number; resetTimeout: number }
export interface OutlierPolicy { consecutiveFailures: number; interval: number; baseEjectionTime: number; maxEjectionTime: number; maxEjectionPercent: number }
export interface BalancerPolicy { type: BalancerType; decay: number; failurePenalty: number; hashHeader?: string | undefined; loadFactor: number }

/** The effective, fully defaulted policy of one destination. */
export interface ServicePolicy {
  timeout: number
  retries: RetryPolicy | false
  balancer: BalancerPolicy
  breaker: BreakerPolicy | false
  outlier: OutlierPolicy | false
}

export const DEFAULT_POLICY: ServicePolicy = Object.freeze({
  timeout: 15_000,
  retries: { attempts: 2, perTryTimeout: Infinity, backoffBase: 25, backoffMax: 250, budgetPercent: 20, budgetMinPerSecond: 10, budgetTtl: 10_000 },
  balancer: { type: 'p2c-peak-ewma', decay: 10_000, failurePenalty: 1000, loadFactor: 1.25 },
  breaker: { errorThreshold: 50, volumeThreshold: 20, window: 10_000, resetTimeout: 5000 },
  outlier: { consecutiveFailures: 5, interval: 10_000, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 50 },
}) as ServicePolicy

export type PolicyInput = Partial<s.Infer<ReturnType<typeof s.object<typeof policyFields>>>>

/** Layers policy inputs over the defaults, field by field. */
export function resolvePolicy(...layers: (PolicyInput | undefined)[]): ServicePolicy {
  const p: ServicePolicy = structuredClone(DEFAULT_POLICY)
  for (const layer of layers) {
    if (!layer) continue
    if (layer.timeout !== undefined) p.timeout = layer.timeout === false ? Infinity : layer.timeout
    if (layer.retries !== undefined) {
      if (layer.retries === false) p.retries = false
      else {
        const r = layer.retries
        const base = p.retries === false ? structuredClone(DEFAULT_POLICY.retries as RetryPolicy) : p.retries
        p.retries = {
          attempts: r.attempts ?? base.attempts,
          perTryTimeout: r.perTryTimeout ?? base.perTryTimeout,
          backoffBase: r.backoff?.base ?? base.backoffBase,
          backoffMax: r.backoff?.max ?? base.backoffMax,
          budgetPercent: r.budget?.percent ?? base.budgetPercent,
          budgetMinPerSecond: r.budget?.minPerSecond ?? base.budgetMinPerSecond,
          budgetTtl: r.budget?.ttl ?? base.budgetTtl,
        }
      }
    }
    if (layer.balancer !== undefined) {
      p.balancer = typeof layer.balancer === 'string' ? { ...p.balancer, type: layer.balancer } : { ...p.balancer, ...layer.balancer }
    }
    if (layer.breaker !== undefined) {
      p.breaker = layer.breaker === false ? false : { ...(p.breaker || (DEFAULT_POLICY.breaker as BreakerPolicy)), ...layer.breaker }
    }
    if (layer.outlier !== undefined) {
      p.outlier = layer.outlier === false ? false : { ...(p.outlier || (DEFAULT_POLICY.outlier as OutlierPolicy)), ...layer.outlier }
    }
  }
  return p
}

/** Validates `createMesh` options; throws MESHLET_ERR_CONFIG_INVALID listing every problem by field. */
export function validateMeshOptions(options: unknown): ValidatedMeshOptions {
  const issues: ConfigIssue[] = []
  const value = meshOptionsSchema.check(options, '', issues)
  if (issues.length > 0 || value === undefined) throw new ConfigError(issues)
  const backoff = [value.defaults, ...Object.values(value.services ?? {})]
  for (const [i, layer] of backoff.entries()) {
    const b = layer && layer.retries !== false ? layer.retries?.backoff : undefined
    if (b?.base !== undefined && b.max !== undefined && b.base > b.max) {
      const where = i === 0 ? 'defaults' : `services.${Object.keys(value.services ?? {})[i - 1]}`
      issues.push({ path: `${where}.retries.backoff`, message: `base (${b.base}ms) is larger than max (${b.max}ms)` })
    }
  }
  for (const [name, svc] of Object.entries(value.services ?? {})) if (svc.routes !== undefined) checkRouteRules(svc.routes, `services.${name}.routes`, issues)
  // The pattern admits hosts and ports that URL parsing refuses (`http://:3001`, port 99999): report them
  // here, by field, instead of createMesh failing later with a bare TypeError.
  for (const [name, svc] of Object.entries(value.services ?? {})) {
    for (const [i, e] of svc.endpoints.entries()) {
      const url = typeof e === 'string' ? e : e.url
      const problem = endpointProblem(url)
      const shown = url.length > 60 ? `a string of ${url.length} characters` : JSON.stringify(url)
      if (problem !== undefined) issues.push({ path: `services.${name}.endpoints[${i}]${typeof e === 'string' ? '' : '.url'}`, message: `${shown} ${problem}` })
    }
  }
  admissionIssues(value.admission, 'admission', issues)
  if (issues.length > 0) throw new ConfigError(issues)
  return value
}

function endpointProblem(url: string): string | undefined {
  try {
    new URL(url.replace(/^dns:/, 'http:'))
  } catch {
    return `is not a valid URL (check the host, and that the port is 0-65535); write ${ENDPOINT_HINT}`
  }
  if (url.startsWith('dns://') && dnsPort(url) === undefined) return 'needs a port (dns://name:port)'
  return undefined
}

/** The explicit port of a `dns://host:port` endpoint, or undefined (read from the text: URL drops `:80`, the http default). */
export function dnsPort(url: string): number | undefined {
  const m = /:(\d{1,5})\/?$/.exec(url)
  return m === null ? undefined : Number(m[1])
}
