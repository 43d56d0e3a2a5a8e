import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { durationSuite } from './duration.fuzz-properties.js'

describe('duration (fuzz)', () => {
  for (const p of durationSuite.properties) it(p.name, () => assertProperty(durationSuite, p))
})
