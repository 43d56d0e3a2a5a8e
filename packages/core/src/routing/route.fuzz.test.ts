import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { routeSuite } from './route.fuzz-properties.js'

describe('routes (fuzz)', () => {
  for (const p of routeSuite.properties) it(p.name, () => assertProperty(routeSuite, p))
})
