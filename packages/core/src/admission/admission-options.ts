/**
 * The `admission` block of mesh options: its schema, its cross-field checks and its defaults.
 */
import type { ConfigIssue } from '../errors.js'
import * as s from '../config/schema.js'
import { DEFAULT_GRADIENT2, type Gradient2Options } from './gradient2-limit.js'

/** What the rate limiter knows about a caller. `meshlet-caller` and other headers are set by the caller itself: do not trust them for limits. */
export interface CallerInfo {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** The peer's IP address as the socket sees it. */
  readonly remoteAddress: string | undefined
}

/** The key of a caller's rate-limit bucket; undefined applies only the server-wide bucket. */
export type CallerKey = (caller: CallerInfo) => string | undefined

function callerKeyFn(description: string): s.Schema<CallerKey> {
  return {
    description,
    check(v, path, issues) {
      if (typeof v === 'function') return v as CallerKey
      return void issues.push({ path, message: `expected a function (caller) => string | undefined, got ${v === null ? 'null' : typeof v}` })
    },
    jsonSchema: () => ({ description: `${description} (a function: set it in code, not in JSON)` }),
  }
}

const rps = (what: string) => s.number({ min: 0.001, max: 10_000_000, description: `Requests per second ${what}.` })
const burst = s.number({ integer: true, min: 1, max: 10_000_000, description: 'Requests that may come at once after a quiet spell (the bucket size). Default: rps rounded up, at least 1.' })
const limit = (description: string) => s.number({ integer: true, min: 1, max: 100_000, description })

export const admissionSchema = s.object(
  {
    concurrency: s.object(
      {
        limit: limit('Requests run at once by this server (Knative containerConcurrency); with `adaptive`, the starting limit.'),
        queue: s.number({ integer: true, min: 0, max: 100_000, description: 'Requests that may wait, first in first out, for a free slot; beyond it 503 + meshlet-rejected. Default: the limit.' }),
        queueTimeout: s.duration({ min: 1, max: 600_000, description: 'Longest wait in the queue before 503 + meshlet-rejected (a request whose deadline comes first gets 504). Default 1s.' }),
      },
      { required: ['limit'] },
    ),
    rateLimit: s.object({
      rps: rps('for this server as a whole'),
      burst,
      perCaller: s.object({ rps: rps('for each caller'), burst }, { required: ['rps'], description: 'A token bucket per caller key (the client address unless callerKey says otherwise).' }),
      callerKey: callerKeyFn('Names the caller for perCaller. Default: the client address. Never a header the caller sets (meshlet-caller is not authenticated).'),
    }),
    shedding: s.object({
      eventLoopDelay: s.duration({ min: 1, max: 60_000, description: 'Event-loop delay (the longest in a sampling interval) above which requests are shed with 503 + meshlet-rejected. Default 100ms when utilization is not set.' }),
      utilization: s.number({ min: 0.01, max: 1, description: 'Event-loop utilization (0..1) above which requests are shed.' }),
      interval: s.duration({ min: 10, max: 10_000, description: 'How often load is sampled. Default 100ms.' }),
    }),
    priorityPaths: s.array(s.string({ pattern: /^\//, patternHint: 'a path starting with "/"', maxLength: 1024 }), {
      maxItems: 100,
      description: 'Path prefixes (health and control traffic) that admission never refuses or counts. Default ["/healthz", "/readyz"].',
    }),
    adaptive: s.object({
      minLimit: limit(`Lowest limit. Default ${DEFAULT_GRADIENT2.minLimit}.`),
      maxLimit: limit(`Highest limit. Default ${DEFAULT_GRADIENT2.maxLimit}.`),
      tolerance: s.number({ min: 1, max: 10, description: `Latency over the long-term average tolerated before the limit shrinks (1.5 = 50% slower). Default ${DEFAULT_GRADIENT2.tolerance}.` }),
      smoothing: s.number({ min: 0.01, max: 1, description: `Weight of each new estimate. Default ${DEFAULT_GRADIENT2.smoothing}.` }),
      window: s.duration({ min: 10, max: 60_000, description: 'The limit moves at most once per window. Default 100ms.' }),
      eventLoopDelay: s.duration({ min: 0, max: 60_000, description: 'Event-loop delay above which the limit shrinks in proportion; 0 uses latency alone. Default 50ms.' }),
    }),
  },
  { description: 'Server-side admission control: concurrency limit and queue, local rate limit, load shedding, adaptive concurrency. Off unless set.' },
)

export type AdmissionOptions = s.Infer<typeof admissionSchema>
export type AdmissionOptionsInput = s.InferInput<typeof admissionSchema>

/** Problems no single field shows: pushed with their field paths under `path`. */
export function admissionIssues(a: AdmissionOptions | undefined, path: string, issues: ConfigIssue[]): void {
  if (a === undefined) return
  if (a.rateLimit !== undefined && a.rateLimit.rps === undefined && a.rateLimit.perCaller === undefined) {
    issues.push({ path: `${path}.rateLimit`, message: 'sets no limit; give rps (per server), perCaller.rps, or both' })
  }
  if (a.rateLimit?.callerKey !== undefined && a.rateLimit.perCaller === undefined) {
    issues.push({ path: `${path}.rateLimit.callerKey`, message: 'has no effect without perCaller' })
  }
  const ad = a.adaptive
  if (ad !== undefined) {
    const min = ad.minLimit ?? DEFAULT_GRADIENT2.minLimit
    const max = ad.maxLimit ?? DEFAULT_GRADIENT2.maxLimit
    if (min > max) issues.push({ path: `${path}.adaptive.minLimit`, message: `${min} is larger than maxLimit (${max})` })
    const start = a.concurrency?.limit
    if (start !== undefined && (start < min || start > max)) issues.push({ path: `${path}.concurrency.limit`, message: `${start} is outside adaptive.minLimit..maxLimit (${min}..${max}); it is the adaptive starting limit` })
  }
}

/** Admission settings with every default applied. */
export interface AdmissionSettings {
  concurrency: { limit: number; queue: number; queueTimeout: number } | undefined
  rateLimit: { rps: number; burst: number } | undefined
  perCaller: { rps: number; burst: number; key: CallerKey } | undefined
  shedding: { eventLoopDelay: number; utilization: number; interval: number } | undefined
  priorityPaths: readonly string[]
  adaptive: Gradient2Options | undefined
}

export const DEFAULT_PRIORITY_PATHS: readonly string[] = Object.freeze(['/healthz', '/readyz'])
const DEFAULT_QUEUE_TIMEOUT = 1000
const DEFAULT_SHED_DELAY = 100
const DEFAULT_SAMPLE_INTERVAL = 100

const clientAddress: CallerKey = (caller) => caller.remoteAddress

export function resolveAdmission(a: AdmissionOptions): AdmissionSettings {
  const ad = a.adaptive
  const adaptive: Gradient2Options | undefined =
    ad === undefined
      ? undefined
      : {
          ...DEFAULT_GRADIENT2,
          ...(ad.minLimit !== undefined ? { minLimit: ad.minLimit } : {}),
          ...(ad.maxLimit !== undefined ? { maxLimit: ad.maxLimit } : {}),
          ...(ad.tolerance !== undefined ? { tolerance: ad.tolerance } : {}),
          ...(ad.smoothing !== undefined ? { smoothing: ad.smoothing } : {}),
          ...(ad.window !== undefined ? { window: ad.window } : {}),
          ...(ad.eventLoopDelay !== undefined ? { eventLoopDelay: ad.eventLoopDelay } : {}),
          initialLimit: a.concurrency?.limit ?? DEFAULT_GRADIENT2.initialLimit,
        }
  const limit = a.concurrency?.limit ?? adaptive?.initialLimit
  const r = a.rateLimit
  const sh = a.shedding
  return {
    concurrency: limit === undefined ? undefined : { limit, queue: a.concurrency?.queue ?? limit, queueTimeout: a.concurrency?.queueTimeout ?? DEFAULT_QUEUE_TIMEOUT },
    rateLimit: r?.rps === undefined ? undefined : { rps: r.rps, burst: r.burst ?? Math.max(1, Math.ceil(r.rps)) },
    perCaller: r?.perCaller === undefined ? undefined : { rps: r.perCaller.rps, burst: r.perCaller.burst ?? Math.max(1, Math.ceil(r.perCaller.rps)), key: r.callerKey ?? clientAddress },
    shedding:
      sh === undefined
        ? undefined
        : {
            eventLoopDelay: sh.eventLoopDelay ?? (sh.utilization === undefined ? DEFAULT_SHED_DELAY : Infinity),
            utilization: sh.utilization ?? Infinity,
            interval: sh.interval ?? DEFAULT_SAMPLE_INTERVAL,
          },
    priorityPaths: a.priorityPaths ?? DEFAULT_PRIORITY_PATHS,
    adaptive,
  }
}
