import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { retryMarkerSuite } from './retry-marker.fuzz-properties.js'

describe('retry markers (fuzz)', () => {
  for (const p of retryMarkerSuite.properties) it(p.name, () => assertProperty(retryMarkerSuite, p))
})
