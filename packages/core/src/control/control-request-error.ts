/** A failed call to the control endpoint: its HTTP status (0 when there was no answer) and the endpoint's code and message. */
export class ControlRequestError extends Error {
  readonly status: number
  readonly code: string
  readonly issues: { path: string; message: string }[] | undefined

  constructor(status: number, code: string, message: string, issues?: { path: string; message: string }[]) {
    super(message)
    this.name = 'ControlRequestError'
    this.status = status
    this.code = code
    this.issues = issues
  }
}
