/**
 * Errors of the control endpoint: MeshletErrors whose code comes from the one registry in core, so
 * the HTTP status they are answered with is the registry's (`status`). Messages are written for
 * the person on call; `issues` lists every invalid field of a 422.
 */
import { ErrorCodes, MeshletError, httpStatusOf, type ControlErrorCode } from '@meshlet/core'

export class ControlError extends MeshletError {
  declare readonly code: ControlErrorCode
  /** The HTTP status of the answer: the code's in the registry. */
  readonly status: number
  readonly issues: readonly { path: string; message: string }[] | undefined

  constructor(code: ControlErrorCode, message: string, options: { issues?: readonly { path: string; message: string }[]; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause })
    this.name = 'ControlError'
    this.status = httpStatusOf(code)
    this.issues = options.issues
  }
}

export const badRequest = (message: string): ControlError => new ControlError(ErrorCodes.BAD_REQUEST, message)
export const notFound = (message: string): ControlError => new ControlError(ErrorCodes.NOT_FOUND, message)

export function isControlError(err: unknown): err is ControlError {
  return err instanceof ControlError
}
