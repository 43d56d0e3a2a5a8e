import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { deadlineHeaderSuite } from './deadline-header.fuzz-properties.js'

describe('meshlet-deadline header (fuzz)', () => {
  for (const p of deadlineHeaderSuite.properties) it(p.name, () => assertProperty(deadlineHeaderSuite, p))
})
