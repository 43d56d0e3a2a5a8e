/** What the scenarios share: interleaved rounds of variants, their totals, and the tables they print. */
import { createMesh, type Mesh, type MeshOptions } from '@meshlet/core'
import { Histogram, type LoadResult, type Send } from './load.js'

/** The URL of a loopback port. */
export const local = (port: number): string => `http://127.0.0.1:${port}`

/** A client mesh named "bench" with these destinations (signals left alone). */
export function newMesh(services: NonNullable<MeshOptions['services']>): Promise<Mesh> {
  return createMesh({ service: 'bench', services, shutdownSignals: false })
}

/** A positive number from the environment, else `fallback`. */
export function envNumber(name: string, fallback: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!(n > 0)) throw new Error(`${name} must be a positive number, got "${v}"`)
  return n
}

export const round1 = (x: number): number => Math.round(x * 10) / 10
export const round3 = (x: number): number => Math.round(x * 1000) / 1000

/** Sums interleaved runs of one variant. */
export class Totals {
  requests = 0
  errors = 0
  seconds = 0
  cpuMs = 0
  readonly hist = new Histogram()
  readonly perRound: number[] = []
  readonly errorKinds: Record<string, number> = {}

  add(r: LoadResult): void {
    this.requests += r.requests
    this.errors += r.errors
    this.seconds += r.seconds
    this.cpuMs += r.cpuMs
    this.hist.merge(r.hist)
    this.perRound.push(Math.round(r.requests / r.seconds))
    for (const [k, n] of Object.entries(r.errorKinds)) this.errorKinds[k] = (this.errorKinds[k] ?? 0) + n
  }

  summary(): Record<string, unknown> {
    return {
      reqPerSec: Math.round(this.requests / this.seconds),
      p50Ms: round3(this.hist.percentile(50)),
      p99Ms: round3(this.hist.percentile(99)),
      cpuUsPerRequest: round1((this.cpuMs * 1000) / this.requests),
      requests: this.requests,
      errors: this.errors,
      perRound: this.perRound,
      ...(this.errors > 0 ? { errorKinds: this.errorKinds } : {}),
    }
  }
}

/** Runs `rounds` rounds over the variants, reversing the order every other round (A B C, C B A, ...). */
export async function interleave(variants: Record<string, Send>, rounds: number, run: (name: string, send: Send) => Promise<LoadResult>): Promise<Map<string, Totals>> {
  const totals = new Map(Object.keys(variants).map((k) => [k, new Totals()]))
  for (let i = 0; i < rounds; i++) {
    const names = Object.keys(variants)
    if (i % 2 === 1) names.reverse()
    for (const name of names) {
      const r = await run(name, variants[name]!)
      totals.get(name)!.add(r)
      console.log(`  round ${i + 1}/${rounds} ${name.padEnd(20)} ${String(Math.round(r.requests / r.seconds)).padStart(6)} req/s  p50 ${r.hist.percentile(50).toFixed(3)} ms  p99 ${r.hist.percentile(99).toFixed(3)} ms${r.errors ? `  errors ${r.errors}` : ''}`)
    }
  }
  return totals
}

export function printTable(title: string, rows: Record<string, unknown>[]): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))]
  const cell = (v: unknown): string => (v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v))
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (vals: string[]): string => `| ${vals.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`
  console.log(`\n${title}\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}`)
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))))
}

export const check = (ok: boolean): string => (ok ? 'PASS' : 'FAIL')
