/**
 * The long fuzz run: every `*.fuzz-properties.ts` suite (the same properties the test run checks
 * briefly) for a time budget, from a fresh random seed. Each counterexample is appended to its
 * suite's `*.fuzz-regressions.json` beside the source, which the test run replays from then on.
 * Usage: npx tsc -b && node bench/dist/fuzz.js [suite...]   (all suites by default)
 * Env: FUZZ_SECONDS (60, shared among the properties) FUZZ_SEED (random)
 */
import type * as Runner from '../packages/core/dist/fuzz-runner.fuzz-properties.js'
import type * as Duration from '../packages/core/dist/config/duration.fuzz-properties.js'
import type * as MeshOptions from '../packages/core/dist/config/mesh-options.fuzz-properties.js'
import type * as WatchReader from '../packages/core/dist/control/watch-event-reader.fuzz-properties.js'
import type * as DeadlineHeader from '../packages/core/dist/deadline/deadline-header.fuzz-properties.js'
import type * as RetryMarker from '../packages/core/dist/resilience/retry-marker.fuzz-properties.js'
import type * as Resources from '../packages/core/dist/resources/resource.fuzz-properties.js'
import type * as Routes from '../packages/core/dist/routing/route.fuzz-properties.js'
import type * as BodyReader from '../packages/control/dist/http/http-io.fuzz-properties.js'
import { envNumber, printTable } from './report.js'

// The suites are test-only modules (not in any package's exports): loaded by path from the built
// packages, typed from the same files. Paths are from bench/dist/, one level below this file.
const load = <M>(path: string): Promise<M> => import(new URL(`../../packages/${path}`, import.meta.url).href) as Promise<M>
const { checkProperty, recordRegression, regressionsPath } = await load<typeof Runner>('core/dist/fuzz-runner.fuzz-properties.js')
const { durationSuite } = await load<typeof Duration>('core/dist/config/duration.fuzz-properties.js')
const { meshOptionsSuite } = await load<typeof MeshOptions>('core/dist/config/mesh-options.fuzz-properties.js')
const { watchReaderSuite } = await load<typeof WatchReader>('core/dist/control/watch-event-reader.fuzz-properties.js')
const { deadlineHeaderSuite } = await load<typeof DeadlineHeader>('core/dist/deadline/deadline-header.fuzz-properties.js')
const { retryMarkerSuite } = await load<typeof RetryMarker>('core/dist/resilience/retry-marker.fuzz-properties.js')
const { resourceSuite } = await load<typeof Resources>('core/dist/resources/resource.fuzz-properties.js')
const { routeSuite } = await load<typeof Routes>('core/dist/routing/route.fuzz-properties.js')
const { bodyReaderSuite } = await load<typeof BodyReader>('control/dist/http/http-io.fuzz-properties.js')

const SUITES: readonly Runner.FuzzSuite[] = [durationSuite, meshOptionsSuite, resourceSuite, routeSuite, deadlineHeaderSuite, retryMarkerSuite, watchReaderSuite, bodyReaderSuite]
const SECONDS = envNumber('FUZZ_SECONDS', 60)
const SEED = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED)

const wanted = process.argv.slice(2)
const suites = wanted.length === 0 ? SUITES : SUITES.filter((s) => wanted.includes(s.name))
if (suites.length === 0) throw new Error(`no suite named ${wanted.join(', ')}; suites: ${SUITES.map((s) => s.name).join(', ')}`)
const count = suites.reduce((n, s) => n + s.properties.length, 0)
const budgetMs = (SECONDS * 1000) / count
console.log(`fuzz: ${count} properties of ${suites.length} suites, ${Math.round(budgetMs)}ms each, seed ${SEED}`)

const rows: Record<string, unknown>[] = []
let failures = 0
for (const suite of suites) {
  for (const property of suite.properties) {
    const started = performance.now()
    // Runs until the time limit: numRuns only has to be larger than any budget allows.
    const details = await checkProperty(property, { seed: SEED, numRuns: 1e9, interruptAfterTimeLimit: budgetMs, markInterruptAsFailure: false })
    const seconds = (performance.now() - started) / 1000
    let outcome = 'ok'
    if (details.failed) {
      failures++
      const entry = recordRegression(suite, property.name, details)
      outcome = `FAILED: ${entry.counterexample.slice(0, 80)} (recorded in ${regressionsPath(suite.regressions)})`
      console.error(`\n${suite.name} / ${property.name}\n  seed ${entry.seed} path ${entry.path}\n  counterexample ${entry.counterexample}\n  ${entry.error}\n`)
    }
    rows.push({ suite: suite.name, property: property.name.slice(0, 70), runs: details.numRuns, 'runs/s': Math.round(details.numRuns / seconds), outcome })
  }
}
printTable(`fuzz for ${SECONDS}s`, rows)
console.log(`fuzz: ${failures} failing propert${failures === 1 ? 'y' : 'ies'} (seed ${SEED})`)
process.exitCode = failures === 0 ? 0 : 1
