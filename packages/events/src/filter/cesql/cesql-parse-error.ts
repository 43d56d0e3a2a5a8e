/** A CESQL expression that is not valid syntax (the TCK's `parse` kind), with where it went wrong. */
export class CesqlParseError extends Error {
  readonly kind = 'parse'
  /** 0-based offset in the expression. */
  readonly position: number

  constructor(reason: string, position: number) {
    super(`${reason} at column ${position + 1}`)
    this.name = 'CesqlParseError'
    this.position = position
  }
}
