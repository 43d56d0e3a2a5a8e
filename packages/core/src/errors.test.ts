import { describe, expect, it } from 'vitest'
import {
  codeForGrpcStatus,
  codeForHttpStatus,
  ConfigError,
  errorInfo,
  ErrorCodes,
  errorRegistry,
  GrpcStatus,
  grpcStatusForHttp,
  grpcStatusOf,
  httpStatusForGrpc,
  httpStatusOf,
  isMeshletError,
  MeshletError,
  type ErrorCode,
} from './errors.js'
import { ControlErrorCodes } from './resources/control-api.js'

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

const allCodes = Object.values(ErrorCodes) as ErrorCode[]

describe('the error registry', () => {
  it('has exactly one complete entry for every code, and no entry without a code', () => {
    expect(new Set(allCodes).size).toBe(allCodes.length)
    expect(Object.keys(errorRegistry).sort()).toEqual([...allCodes].sort())
    for (const code of allCodes) {
      const info = errorInfo(code)
      expect(info, code).toBeDefined()
      expect(Number.isInteger(info!.http) && info!.http >= 400 && info!.http <= 599, `${code}.http`).toBe(true)
      expect(Object.values(GrpcStatus), `${code}.grpc`).toContain(info!.grpc)
      expect(info!.grpc, `${code}.grpc is a failure`).not.toBe(GrpcStatus.OK)
      expect(typeof info!.retryable, `${code}.retryable`).toBe('boolean')
      expect(info!.action, `${code}.action is one sentence`).toMatch(/^[A-Z].{15,}[.)]$/s)
    }
  })

  it('names every code MESHLET_ERR_<its key>', () => {
    for (const [key, code] of Object.entries(ErrorCodes)) expect(code).toBe(`MESHLET_ERR_${key}`)
  })

  it('is the one family: every control API code is a registry code with the status the endpoint always answered', () => {
    const answered: Record<string, number> = {
      BAD_REQUEST: 400, UNAUTHENTICATED: 401, FORBIDDEN: 403, NOT_FOUND: 404, UNKNOWN_KIND: 404, METHOD_NOT_ALLOWED: 405, CONFLICT: 409,
      RESYNC: 410, TOO_LARGE: 413, CONFIG_INVALID: 422, LEASE_NOT_FOUND: 404, STORE_CORRUPT: 500, STORE_FAILED: 503, STORE_LOCKED: 500, INTERNAL: 500,
      UNSUPPORTED_MEDIA_TYPE: 415, QUOTA_EXCEEDED: 429, EVENT_INVALID: 400, EVENT_TOO_LARGE: 413, BROKER_UNAVAILABLE: 503,
    }
    expect(Object.keys(ControlErrorCodes).sort()).toEqual(Object.keys(answered).sort())
    for (const [key, code] of Object.entries(ControlErrorCodes)) {
      expect(code).toBe(ErrorCodes[key as keyof typeof ErrorCodes])
      expect(httpStatusOf(code), code).toBe(answered[key])
    }
  })

  it('answers undefined for a string that is not a code, including Object.prototype names', () => {
    expect(errorInfo('MESHLET_ERR_NOPE')).toBeUndefined()
    expect(errorInfo('constructor')).toBeUndefined()
    expect(errorInfo('toString')).toBeUndefined()
  })

  it('codes cancellation on its own: 499 and gRPC CANCELLED, not retryable', () => {
    expect(errorRegistry[ErrorCodes.CANCELLED]).toMatchObject({ http: 499, grpc: GrpcStatus.CANCELLED, retryable: false })
    expect(codeForHttpStatus(499)).toBe(ErrorCodes.CANCELLED)
    expect(codeForGrpcStatus(GrpcStatus.CANCELLED)).toBe(ErrorCodes.CANCELLED)
  })

  it('gives an error its code\'s retryable flag unless the site says otherwise', () => {
    expect(new MeshletError(ErrorCodes.OVERLOADED, 'x').retryable).toBe(true)
    expect(new MeshletError(ErrorCodes.CANCELLED, 'x').retryable).toBe(false)
    expect(new MeshletError(ErrorCodes.OVERLOADED, 'x', { retryable: false }).retryable).toBe(false)
    expect(new MeshletError(ErrorCodes.DEADLINE, 'x', { retryable: true }).retryable).toBe(true)
  })
})

describe('status mappings', () => {
  const httpStatuses = [...new Set(allCodes.map(httpStatusOf))]
  const grpcStatuses = [...new Set(allCodes.map(grpcStatusOf))]

  it('HTTP: status → code → status is the identity for every status a code uses', () => {
    for (const s of httpStatuses) expect(httpStatusOf(codeForHttpStatus(s)!), String(s)).toBe(s)
  })

  it('gRPC: status → code → status is the identity for every status a code uses', () => {
    for (const s of grpcStatuses) expect(grpcStatusOf(codeForGrpcStatus(s)!), String(s)).toBe(s)
  })

  it('code → status → code lands on a code with the same HTTP and the same gRPC status', () => {
    for (const c of allCodes) {
      expect(httpStatusOf(codeForHttpStatus(httpStatusOf(c))!), c).toBe(httpStatusOf(c))
      expect(grpcStatusOf(codeForGrpcStatus(grpcStatusOf(c))!), c).toBe(grpcStatusOf(c))
    }
  })

  it('goes HTTP → gRPC → HTTP and back through the same codes', () => {
    for (const s of httpStatuses) expect(httpStatusForGrpc(grpcStatusForHttp(s)), String(s)).toBe(httpStatusOf(codeForGrpcStatus(grpcStatusForHttp(s))!))
    for (const g of grpcStatuses) expect(grpcStatusForHttp(httpStatusForGrpc(g)), String(g)).toBe(grpcStatusOf(codeForHttpStatus(httpStatusForGrpc(g))!))
  })

  it('maps HTTP to gRPC as grpc/grpc\'s table does, except 400, 404, 500 and 504 whose meaning meshlet knows', () => {
    const S = GrpcStatus
    expect([200, 401, 403, 429, 502, 503, 418, 501, 599].map(grpcStatusForHttp)).toEqual([S.OK, S.UNAUTHENTICATED, S.PERMISSION_DENIED, S.UNAVAILABLE, S.UNAVAILABLE, S.UNAVAILABLE, S.INVALID_ARGUMENT, S.UNKNOWN, S.UNKNOWN])
    expect([400, 404, 500, 504].map(grpcStatusForHttp)).toEqual([S.INVALID_ARGUMENT, S.NOT_FOUND, S.INTERNAL, S.DEADLINE_EXCEEDED])
    expect(grpcStatusForHttp(499)).toBe(S.CANCELLED)
  })

  it('maps statuses that are not failures to no code, and the ones without a code of their own to the nearest', () => {
    expect([200, 204, 301, 399].map(codeForHttpStatus)).toEqual([undefined, undefined, undefined, undefined])
    expect(codeForHttpStatus(418)).toBe(ErrorCodes.BAD_REQUEST)
    expect(codeForHttpStatus(501)).toBe(ErrorCodes.UNKNOWN)
    expect(codeForHttpStatus(600)).toBe(ErrorCodes.UNKNOWN)
    expect(codeForGrpcStatus(GrpcStatus.OK)).toBeUndefined()
    expect(codeForGrpcStatus(GrpcStatus.RESOURCE_EXHAUSTED)).toBe(ErrorCodes.RATE_LIMITED)
    expect(codeForGrpcStatus(GrpcStatus.ALREADY_EXISTS)).toBe(ErrorCodes.CONFLICT)
    expect(codeForGrpcStatus(GrpcStatus.DATA_LOSS)).toBe(ErrorCodes.INTERNAL)
    expect([17, -1, 1.5, Number.NaN].map(codeForGrpcStatus)).toEqual([ErrorCodes.UNKNOWN, ErrorCodes.UNKNOWN, ErrorCodes.UNKNOWN, ErrorCodes.UNKNOWN])
    expect(httpStatusForGrpc(GrpcStatus.OK)).toBe(200)
  })

  it('agrees with the data plane\'s refusals: drain and shedding 503 UNAVAILABLE, a passed deadline 504 DEADLINE_EXCEEDED, a bad header 400 INVALID_ARGUMENT', () => {
    for (const c of [ErrorCodes.DRAINING, ErrorCodes.OVERLOADED]) expect([httpStatusOf(c), grpcStatusOf(c)]).toEqual([503, GrpcStatus.UNAVAILABLE])
    expect([httpStatusOf(ErrorCodes.RATE_LIMITED), grpcStatusOf(ErrorCodes.RATE_LIMITED)]).toEqual([429, GrpcStatus.UNAVAILABLE])
    expect([httpStatusOf(ErrorCodes.DEADLINE), grpcStatusOf(ErrorCodes.DEADLINE)]).toEqual([504, GrpcStatus.DEADLINE_EXCEEDED])
    expect([httpStatusOf(ErrorCodes.BAD_HEADER), grpcStatusOf(ErrorCodes.BAD_HEADER)]).toEqual([400, GrpcStatus.INVALID_ARGUMENT])
  })
})
