import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { resourceSuite } from './resource.fuzz-properties.js'

describe('resources (fuzz)', () => {
  for (const p of resourceSuite.properties) it(p.name, () => assertProperty(resourceSuite, p))
})
