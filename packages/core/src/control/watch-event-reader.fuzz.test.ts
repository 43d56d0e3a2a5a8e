import { describe, it } from 'vitest'
import { assertProperty } from '../fuzz-runner.fuzz-properties.js'
import { watchReaderSuite } from './watch-event-reader.fuzz-properties.js'

describe('watch stream reader (fuzz)', () => {
  for (const p of watchReaderSuite.properties) it(p.name, () => assertProperty(watchReaderSuite, p))
})
