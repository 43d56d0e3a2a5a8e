/**
 * The CESQL type system (cesql/spec.md §3.1, §3.7): Boolean, Integer (32-bit signed) and String,
 * their zero values, and the casts between them. A cast never throws: a failed one yields the
 * target's zero value and names a `cast` error, which the caller records.
 */

export type CesqlValue = boolean | number | string
export type CesqlType = 'Boolean' | 'Integer' | 'String'

/** The TCK's error kinds (cesql_tck/README.md), one per error type of spec §3.3. */
export type CesqlErrorKind = 'parse' | 'math' | 'cast' | 'missingFunction' | 'functionEvaluation' | 'missingAttribute' | 'generic'

export interface CesqlError {
  readonly kind: CesqlErrorKind
  readonly message: string
  /** 0-based offset in the expression of the operator, function or attribute that raised it. */
  readonly position?: number
}

export const INT_MIN = -2_147_483_648
export const INT_MAX = 2_147_483_647

export function typeOf(value: CesqlValue): CesqlType {
  return typeof value === 'boolean' ? 'Boolean' : typeof value === 'number' ? 'Integer' : 'String'
}

export function zeroOf(type: CesqlType): CesqlValue {
  return type === 'Boolean' ? false : type === 'Integer' ? 0 : ''
}

export function isInt32(n: number): boolean {
  return Number.isInteger(n) && n >= INT_MIN && n <= INT_MAX
}

/** The result of a cast: the value, and the reason when it failed (the value is then the zero value). */
export interface CastResult {
  value: CesqlValue
  failure?: string
}

const INTEGER_TEXT = /^[+-]?[0-9]+$/

/** String → Integer (spec §3.7): base 10, an optional sign, within 32 bits; anything else fails. */
export function parseInteger(text: string): number | undefined {
  if (!INTEGER_TEXT.test(text)) return undefined
  const digits = text.replace(/^[+-]?0*/, '')
  // More than 10 significant digits cannot be a 32-bit integer (and Number() would round them).
  if (digits.length > 10) return undefined
  const n = Number(text)
  return isInt32(n) ? n : undefined
}

/** String → Boolean (spec §3.7): "true" or "false" in any case. */
export function parseBoolean(text: string): boolean | undefined {
  const lower = text.length === 4 || text.length === 5 ? text.toLowerCase() : ''
  return lower === 'true' ? true : lower === 'false' ? false : undefined
}

function quoted(value: CesqlValue): string {
  const s = String(value)
  return typeof value === 'string' ? JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s) : s
}

/**
 * The implicit cast an operator or function applies to an operand (spec §3.7). Integer → Boolean
 * is refused here: the TCK's `NOT 10` is a cast error (its value then `NOT false`, true), while the
 * explicit `BOOL(10)` converts (see `explicitCast`).
 */
export function implicitCast(value: CesqlValue, target: CesqlType): CastResult {
  if (typeOf(value) === target) return { value }
  if (target === 'String') return { value: String(value) }
  if (target === 'Integer') {
    if (typeof value === 'boolean') return { value: value ? 1 : 0 }
    const n = parseInteger(value as string)
    return n === undefined ? { value: 0, failure: `cannot cast ${quoted(value)} to Integer` } : { value: n }
  }
  if (typeof value === 'string') {
    const b = parseBoolean(value)
    return b === undefined ? { value: false, failure: `cannot cast ${quoted(value)} to Boolean (only "true" and "false" are Booleans)` } : { value: b }
  }
  return { value: false, failure: `an Integer (${value}) is not a Boolean here; write BOOL(x) or x != 0` }
}

/** The casts of INT(x), BOOL(x) and STRING(x): every pair of spec §3.7's table, Integer → Boolean included. */
export function explicitCast(value: CesqlValue, target: CesqlType): CastResult {
  if (target === 'Boolean' && typeof value === 'number') return { value: value !== 0 }
  return implicitCast(value, target)
}
