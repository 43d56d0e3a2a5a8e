import { describe, expect, it } from 'vitest'
import { ConfigError, ErrorCodes, isMeshletError, MeshletError } from './errors.js'

/** What a MeshletError from a second copy of @meshlet/core looks like: another class, the same brand. */
class ForeignMeshletError extends Error {
  readonly code = ErrorCodes.NO_ENDPOINT
  readonly retryable = true
  readonly rejected = false
  get [Symbol.for('meshlet.error')](): true {
    return true
  }
}

describe('MeshletError', () => {
  it('carries its code, flags, details and cause', () => {
    const cause = new Error('ECONNRESET')
    const e = new MeshletError(ErrorCodes.UPSTREAM, 'upstream failed', { retryable: true, rejected: true, cause, details: { endpoint: 'http://a:1' } })
    expect(e).toBeInstanceOf(Error)
    expect(e.name).toBe('MeshletError')
    expect(e.code).toBe('MESHLET_ERR_UPSTREAM')
    expect(e.retryable).toBe(true)
    expect(e.rejected).toBe(true)
    expect(e.cause).toBe(cause)
    expect(e.details).toEqual({ endpoint: 'http://a:1' })
  })

  it('defaults its flags to false and sets no cause', () => {
    const e = new MeshletError(ErrorCodes.CLOSED, 'closed')
    expect(e.retryable).toBe(false)
    expect(e.rejected).toBe(false)
    expect('cause' in e).toBe(false)
  })
})

describe('isMeshletError', () => {
  it('recognizes a MeshletError, and checks the code when given one', () => {
    const e = new MeshletError(ErrorCodes.DEADLINE, 'late')
    expect(isMeshletError(e)).toBe(true)
    expect(isMeshletError(e, ErrorCodes.DEADLINE)).toBe(true)
    expect(isMeshletError(e, ErrorCodes.NO_ENDPOINT)).toBe(false)
  })

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'MESHLET_ERR_DEADLINE'],
    ['a plain Error', new Error('x')],
    ['an object with a matching code', { code: ErrorCodes.DEADLINE, message: 'x' }],
    ['an object whose brand is not exactly true', { [Symbol.for('meshlet.error')]: 'yes', code: ErrorCodes.DEADLINE }],
  ])('refuses %s', (_what, value) => {
    expect(isMeshletError(value)).toBe(false)
    expect(value instanceof MeshletError).toBe(false)
  })

  it('recognizes an error from a duplicate install by its brand, for isMeshletError and instanceof', () => {
    const foreign: unknown = new ForeignMeshletError('no endpoint')
    expect(isMeshletError(foreign)).toBe(true)
    expect(isMeshletError(foreign, ErrorCodes.NO_ENDPOINT)).toBe(true)
    expect(isMeshletError(foreign, ErrorCodes.DEADLINE)).toBe(false)
    expect(foreign instanceof MeshletError).toBe(true)
    // Subclasses keep ordinary prototype checks: a foreign error is not a local ConfigError.
    expect(foreign instanceof ConfigError).toBe(false)
  })
})

describe('ConfigError', () => {
  const issues = [
    { path: 'service', message: 'is required' },
    { path: 'services.payments.timeout', message: '"2x" is not a duration' },
  ]

  it('is a MeshletError with code MESHLET_ERR_CONFIG_INVALID listing every issue', () => {
    const e = new ConfigError(issues)
    expect(e).toBeInstanceOf(ConfigError)
    expect(e).toBeInstanceOf(MeshletError)
    expect(e).toBeInstanceOf(Error)
    expect(isMeshletError(e, ErrorCodes.CONFIG_INVALID)).toBe(true)
    expect(e.name).toBe('ConfigError')
    expect(e.issues).toBe(issues)
    expect(e.details).toEqual({ issues })
    expect(e.message).toBe('Invalid mesh options (2 problems):\n  - service: is required\n  - services.payments.timeout: "2x" is not a duration')
  })

  it('says "problem" for one issue and names what was invalid', () => {
    expect(new ConfigError([issues[0]!], 'Route shop/payments').message).toBe('Invalid Route shop/payments (1 problem):\n  - service: is required')
  })

  it('does not claim a plain MeshletError with the same code', () => {
    const plain = new MeshletError(ErrorCodes.CONFIG_INVALID, 'bad')
    expect(plain instanceof ConfigError).toBe(false)
    expect(plain instanceof MeshletError).toBe(true)
  })
})
