import { describe, expect, it } from 'vitest'
import { ControlErrorCodes, ErrorCodes, isMeshletError, MeshletError } from '@meshlet/core'
import { badRequest, ControlError, isControlError, notFound } from './errors.js'

describe('ControlError', () => {
  it('is a MeshletError from the one registry, answered with the code\'s HTTP status', () => {
    const e = new ControlError(ControlErrorCodes.CONFLICT, 'changed meanwhile', { issues: [{ path: 'spec', message: 'x' }] })
    expect(e).toBeInstanceOf(MeshletError)
    expect(isMeshletError(e, ErrorCodes.CONFLICT)).toBe(true)
    expect(isControlError(e)).toBe(true)
    expect(e).toMatchObject({ name: 'ControlError', code: 'MESHLET_ERR_CONFLICT', status: 409, retryable: false, issues: [{ path: 'spec', message: 'x' }] })
    expect(new ControlError(ControlErrorCodes.STORE_FAILED, 'disk').retryable).toBe(true)
  })

  it('keeps the statuses the endpoint has always answered with', () => {
    expect([badRequest('b').status, notFound('n').status]).toEqual([400, 404])
    expect(new ControlError(ControlErrorCodes.CONFIG_INVALID, 'bad').status).toBe(422)
    expect(new ControlError(ControlErrorCodes.RESYNC, 'old').status).toBe(410)
    expect(new ControlError(ControlErrorCodes.TOO_LARGE, 'big').status).toBe(413)
  })

  it('keeps its cause, and is not claimed by isControlError for a plain MeshletError', () => {
    const cause = new Error('EIO')
    expect(new ControlError(ControlErrorCodes.STORE_FAILED, 'x', { cause }).cause).toBe(cause)
    expect(isControlError(new MeshletError(ErrorCodes.NOT_FOUND, 'x'))).toBe(false)
  })
})
