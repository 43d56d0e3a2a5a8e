import { describe, it } from 'vitest'
import { assertProperty } from '../../../core/src/fuzz-runner.fuzz-properties.js'
import { bodyReaderSuite } from './http-io.fuzz-properties.js'

describe('readJsonBody over loopback (fuzz)', () => {
  for (const p of bodyReaderSuite.properties) it(p.name, () => assertProperty(bodyReaderSuite, p))
})
