import { describe, expect, it, vi } from 'vitest'
import { fakeProtocol } from '../client/testing/fake-protocol.test-support.js'
import { traceFilter } from './trace-filter.js'

// As in an app without @opentelemetry/api installed.
vi.mock('./otel.js', () => ({ loadOtel: () => undefined, injectTraceContext: () => undefined }))

describe('traceFilter without @opentelemetry/api', () => {
  it('is left out of the stack', () => {
    expect(traceFilter(fakeProtocol().protocol)).toBeUndefined()
  })
})
