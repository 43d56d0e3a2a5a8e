/**
 * What the fuzz suites share: a property as data (so `*.fuzz.test.ts` runs it briefly in the test
 * run and `bench/fuzz.ts` runs it for minutes), and the regression files that keep every
 * counterexample the long run found. Test-only, like `*.test-support.ts`: built (bench imports the
 * compiled suites) but not exported and not shipped.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'

// The property's value types vary per property; only fast-check looks inside them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyProperty = fc.IRawProperty<any>

export interface MadeProperty {
  readonly property: AnyProperty
  /** Frees what making the property took (a server on loopback); called once its runs are over. */
  release?(): Promise<void> | void
}

export interface FuzzProperty {
  /** Says what must hold; unique within its suite, and the key of its regressions. */
  readonly name: string
  /** Runs in the normal test run; properties that use sockets run fewer. Default 300. */
  readonly runs?: number
  make(): MadeProperty | Promise<MadeProperty>
}

export interface FuzzSuite {
  readonly name: string
  /** The suite's `*.fuzz-regressions.json` (beside its source; a compiled suite's URL is mapped back to src/). */
  readonly regressions: URL
  readonly properties: readonly FuzzProperty[]
}

/** One counterexample, replayed by its seed and path (fast-check regenerates the same value from them). */
export interface FuzzRegression {
  readonly seed: number
  readonly path: string
  /** The value as fast-check shows it, for the reader; the replay does not use it. */
  readonly counterexample: string
  readonly error: string
  readonly found: string
}

export type FuzzRegressions = Record<string, FuzzRegression[]>

/** The fixed seed of the test run (FUZZ_SEED overrides it), so a failure reproduces; fast-check prints seed and path. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_260_717)

/** Regression files are committed with the source: `dist/x.fuzz-regressions.json` means `src/x.fuzz-regressions.json`. */
export function regressionsPath(url: URL): string {
  return fileURLToPath(url).replace(/([\\/])dist([\\/])(?!.*[\\/]dist[\\/])/, '$1src$2')
}

export function readRegressions(suite: FuzzSuite): FuzzRegressions {
  const file = regressionsPath(suite.regressions)
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as FuzzRegressions) : {}
}

/** Adds a failed run's counterexample to the suite's regression file (created on first use). */
export function recordRegression(suite: FuzzSuite, property: string, details: fc.RunDetails<unknown>): FuzzRegression {
  const all = readRegressions(suite)
  const entry: FuzzRegression = {
    seed: details.seed,
    path: details.counterexamplePath ?? '',
    counterexample: fc.stringify(details.counterexample).slice(0, 2000),
    error: String(details.errorInstance).slice(0, 500),
    found: new Date().toISOString(),
  }
  ;(all[property] ??= []).push(entry)
  writeFileSync(regressionsPath(suite.regressions), `${JSON.stringify(all, null, 2)}\n`)
  return entry
}

/** Runs `property` with `params`; failures come back in the details (fc.check), nothing throws. */
export async function checkProperty(property: FuzzProperty, params: fc.Parameters<unknown>): Promise<fc.RunDetails<unknown>> {
  const made = await property.make()
  try {
    return await fc.check(made.property, params)
  } finally {
    await made.release?.()
  }
}

/**
 * The test run's check: every recorded regression of the property first (each its own exact
 * case), then `runs` fresh cases from FUZZ_SEED. Throws fast-check's report (seed, path,
 * counterexample, shrunk) on the first failure.
 */
export async function assertProperty(suite: FuzzSuite, property: FuzzProperty, runs = Number(process.env.FUZZ_RUNS ?? property.runs ?? 300)): Promise<void> {
  const made = await property.make()
  try {
    for (const r of readRegressions(suite)[property.name] ?? []) {
      await fc.assert(made.property, { seed: r.seed, path: r.path, endOnFailure: true })
    }
    await fc.assert(made.property, { seed: FUZZ_SEED, numRuns: runs })
  } finally {
    await made.release?.()
  }
}
