import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { meshOptionsSuite } from './mesh-options.fuzz-properties.js'

describe('mesh options (fuzz)', () => {
  for (const p of meshOptionsSuite.properties) it(p.name, () => assertProperty(meshOptionsSuite, p))
})
