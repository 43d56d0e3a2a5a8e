/**
 * Errors of the control endpoint. Each carries the wire code (`MESHLET_ERR_*`) and the HTTP status
 * it is answered with; messages are written for the person on call.
 */
import { ControlErrorCodes, type ControlErrorCode } from '@meshlet/core'

export class ControlError extends Error {
  readonly code: ControlErrorCode
  readonly status: number
  readonly issues: readonly { path: string; message: string }[] | undefined

  constructor(code: ControlErrorCode, status: number, message: string, options: { issues?: readonly { path: string; message: string }[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ControlError'
    this.code = code
    this.status = status
    this.issues = options.issues
  }
}

export const badRequest = (message: string): ControlError => new ControlError(ControlErrorCodes.BAD_REQUEST, 400, message)
export const notFound = (message: string): ControlError => new ControlError(ControlErrorCodes.NOT_FOUND, 404, message)

export function isControlError(err: unknown): err is ControlError {
  return err instanceof ControlError
}
