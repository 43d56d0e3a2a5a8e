/** Properties of the retry markers (`meshlet-attempt`, `grpc-previous-rpc-attempts`) as a server reads them. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { isRetriedCall } from './retry-marker.js'

const marker = fc.oneof(
  fc.constant(undefined),
  fc.integer({ min: -5, max: 2_000_000 }).map(String),
  fc.string({ unit: fc.constantFrom(...'0123456789 +-.e'), maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.array(fc.integer({ min: 0, max: 5 }).map(String), { maxLength: 3 }),
)

/** The model, written another way: the first value, if it is the canonical text of an integer in range. */
function counts(v: string | string[] | undefined, min: number): boolean {
  const first = Array.isArray(v) ? v[0] : v
  if (first === undefined) return false
  const n = Number(first)
  return Number.isInteger(n) && String(n) === first && n >= min && n <= 999_999
}

export const retryMarkerSuite: FuzzSuite = {
  name: 'retry-marker',
  regressions: new URL('./retry-marker.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'isRetriedCall is true exactly when meshlet-attempt is an integer 2..999999 or grpc-previous-rpc-attempts one 1..999999',
      make: () => ({
        property: fc.property(marker, marker, (attempt, previous) => {
          assert.equal(isRetriedCall(attempt, previous), counts(attempt, 2) || counts(previous, 1))
        }),
      }),
    },
  ],
}
