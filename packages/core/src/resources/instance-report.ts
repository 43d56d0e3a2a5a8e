/**
 * What an instance tells the control endpoint about itself with each heartbeat (mesh.ts `#report`,
 * shown by `meshlet inspect`): its lifecycle state, load, admission and what it sees of its
 * destinations.
 *
 * Contract (the endpoint keeps one report per instance in memory and in its snapshot, so it bounds them):
 * - Known fields are typed; a known field of the wrong type is refused (422 naming the field).
 * - Unknown fields are dropped, not refused: a newer mesh that reports more must keep its lease
 *   (a refused heartbeat does not renew it), and the endpoint keeps only what it can bound.
 * - A report is at most MAX_REPORT_BYTES as JSON. `fitReport` shortens a longer one (endpoint
 *   lists from the end, then whole destinations, in name order) and marks it `truncated: true`;
 *   the client does so before sending and the endpoint again on receipt.
 */
import type { ConfigIssue } from '../errors.js'
import * as s from '../config/schema.js'

/** Largest report kept, as JSON in UTF-8 bytes: a mesh with a handful of destinations fits whole. */
export const MAX_REPORT_BYTES = 8 * 1024

export type ReportedEndpoint = {
  url?: string
  latencyMs?: number
  inflight?: number
  requests?: number
  failures?: number
  ejected?: boolean
}

export type ReportedDestination = {
  breaker?: string
  endpoints?: ReportedEndpoint[]
}

export type ReportedAdmission = {
  enabled?: boolean
  limit?: number | null
  adaptive?: boolean
  inflight?: number
  queued?: number
  queueLimit?: number
  overloaded?: boolean
  eventLoopDelayMs?: number
  rejected?: Record<string, number>
}

export type InstanceReport = {
  state?: string
  inflight?: number
  utilization?: number
  admission?: ReportedAdmission
  configVersion?: number
  destinations?: Record<string, ReportedDestination>
  /** Set when the report was shortened to fit MAX_REPORT_BYTES. */
  truncated?: boolean
}

const count = s.number({ integer: true, min: 0 })
const finite = s.number({ min: 0 })
const label = s.string({ maxLength: 64 })

/** Like `s.object`, but unknown keys are dropped instead of refused (see the contract above). */
function openObject<T>(fields: Record<string, s.Schema<unknown>>): s.Schema<T> {
  return {
    check(v, path, issues) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return void issues.push({ path: path || '(root)', message: 'expected an object' })
      const before = issues.length
      const out: Record<string, unknown> = {}
      for (const [key, schema] of Object.entries(fields)) {
        const value = (v as Record<string, unknown>)[key]
        if (value === undefined) continue
        const checked = schema.check(value, path ? `${path}.${key}` : key, issues)
        if (checked !== undefined) out[key] = checked
      }
      return issues.length === before ? (out as T) : undefined
    },
    jsonSchema: () => ({ type: 'object', properties: Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.jsonSchema()])) }),
  }
}

const nullableCount: s.Schema<number | null> = {
  check: (v, path, issues) => (v === null ? null : count.check(v, path, issues)),
  jsonSchema: () => ({ type: ['integer', 'null'], minimum: 0 }),
}

const endpointSchema = openObject<ReportedEndpoint>({ url: s.string({ maxLength: 512 }), latencyMs: finite, inflight: count, requests: count, failures: count, ejected: s.boolean() })

/** The heartbeat report; see the module contract for what is refused, dropped and shortened. */
export const instanceReportSchema: s.Schema<InstanceReport> = openObject<InstanceReport>({
  state: label,
  inflight: count,
  utilization: finite,
  admission: openObject<ReportedAdmission>({
    enabled: s.boolean(),
    limit: nullableCount,
    adaptive: s.boolean(),
    inflight: count,
    queued: count,
    queueLimit: count,
    overloaded: s.boolean(),
    eventLoopDelayMs: finite,
    rejected: s.record(label, count, { maxEntries: 32 }),
  }),
  configVersion: count,
  // Counts are bounded here so that checking a hostile report costs little; size is bounded by fitReport.
  destinations: s.record(s.string({ maxLength: 253 }), openObject<ReportedDestination>({ breaker: label, endpoints: s.array(endpointSchema, { maxItems: 50 }) }), { maxEntries: 256 }),
  truncated: s.boolean(),
})

/** Checks a report (issues for known fields of the wrong type, unknown ones dropped) and fits it to `maxBytes`. */
export function checkReport(value: unknown, issues: ConfigIssue[], maxBytes = MAX_REPORT_BYTES): InstanceReport | undefined {
  const report = instanceReportSchema.check(value, 'report', issues)
  return report === undefined ? undefined : fitReport(report, maxBytes)
}

/**
 * The report itself when it fits in `maxBytes` as JSON; else a copy shortened to fit: endpoint
 * lists lose their last entries, then destinations are dropped from the last in name order, and
 * `truncated` is set. Linear in the report's size (sizes are measured once per part).
 */
export function fitReport(report: InstanceReport, maxBytes = MAX_REPORT_BYTES): InstanceReport {
  if (byteSize(report) <= maxBytes) return report
  const { destinations, ...rest } = report
  const head: InstanceReport = { ...rest, truncated: true }
  // What is left for `"destinations":{...}` once the rest is written (the braces and comma included).
  let budget = maxBytes - byteSize(head) - '"destinations":{},'.length
  if (destinations === undefined || budget <= 0) return byteSize(head) <= maxBytes ? head : { truncated: true }
  const kept: Record<string, ReportedDestination> = {}
  for (const name of Object.keys(destinations).sort()) {
    const d = destinations[name]!
    const { endpoints = [], ...destRest } = d
    // `"name":{...,"endpoints":[]},` without endpoints, then as many endpoints as still fit.
    let size = byteSize(name) + 1 + byteSize({ ...destRest, endpoints: [] }) + 1
    if (size > budget) break
    const keptEndpoints: ReportedEndpoint[] = []
    for (const e of endpoints) {
      const es = byteSize(e) + 1
      if (size + es > budget) break
      keptEndpoints.push(e)
      size += es
    }
    Object.defineProperty(kept, name, { value: { ...destRest, endpoints: keptEndpoints }, enumerable: true, writable: true, configurable: true })
    budget -= size
    if (keptEndpoints.length < endpoints.length) break
  }
  return { ...head, destinations: kept }
}

function byteSize(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value))
}
