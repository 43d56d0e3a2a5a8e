/**
 * CESQL's built-in functions (spec §3.5, and INT/BOOL/STRING/IS_BOOL/IS_INT as the TCK and the
 * sdk-java engine have them). Each is total: it always returns a value of its return type, with an
 * error beside it when it could not do what was asked. Arguments arrive already cast to the
 * parameter types; `Any` parameters arrive as they are.
 *
 * Strings are counted and cut in Unicode code points ("characters"). A function never builds a
 * string longer than MAX_STRING_RESULT code units: expressions are user input, and CONCAT over
 * large attributes could otherwise grow without bound.
 */
import { explicitCast, implicitCast, INT_MIN, INT_MAX, type CesqlErrorKind, type CesqlType, type CesqlValue } from './cesql-values.js'

export const MAX_STRING_RESULT = 65_536

export type ParamType = CesqlType | 'Any'

export interface FunctionResult {
  value: CesqlValue
  error?: { kind: CesqlErrorKind; message: string }
}

export interface CesqlFunction {
  readonly name: string
  /** The fixed parameters. */
  readonly params: readonly ParamType[]
  /** The type of any further arguments, for a variadic function. */
  readonly rest?: CesqlType
  readonly returns: CesqlType
  readonly call: (args: readonly CesqlValue[]) => FunctionResult
}

const fn = (name: string, params: ParamType[], returns: CesqlType, call: CesqlFunction['call'], rest?: CesqlType): CesqlFunction => ({ name, params, returns, call, ...(rest ? { rest } : {}) })

function fromCast(r: { value: CesqlValue; failure?: string }): FunctionResult {
  return r.failure === undefined ? { value: r.value } : { value: r.value, error: { kind: 'cast', message: r.failure } }
}

function chars(s: string): string[] {
  return /[\uD800-\uDFFF]/.test(s) ? Array.from(s) : s.split('')
}

function length(s: string): number {
  return /[\uD800-\uDFFF]/.test(s) ? Array.from(s).length : s.length
}

function bounded(s: string, name: string): FunctionResult {
  if (s.length <= MAX_STRING_RESULT) return { value: s }
  return { value: '', error: { kind: 'functionEvaluation', message: `${name} would return ${s.length} characters; at most ${MAX_STRING_RESULT} are allowed` } }
}

/** Unicode White_Space (spec: TRIM removes "whitespaces as defined by unicode"), tested one character at a time. */
const WHITE_SPACE = /^\p{White_Space}$/u

function trim(s: string): string {
  const cs = chars(s)
  let a = 0
  let b = cs.length
  while (a < b && WHITE_SPACE.test(cs[a]!)) a++
  while (b > a && WHITE_SPACE.test(cs[b - 1]!)) b--
  return a === 0 && b === cs.length ? s : cs.slice(a, b).join('')
}

function substring(name: string, x: string, pos: number, len?: number): FunctionResult {
  const cs = chars(x)
  if (pos > cs.length || pos < -cs.length) return { value: '', error: { kind: 'functionEvaluation', message: `${name}: position ${pos} is outside a string of ${cs.length} characters` } }
  if (len !== undefined && len < 0) return { value: '', error: { kind: 'functionEvaluation', message: `${name}: length ${len} is negative` } }
  if (pos === 0) return { value: '' }
  const start = pos > 0 ? pos - 1 : cs.length + pos
  return { value: cs.slice(start, len === undefined ? undefined : start + len).join('') }
}

const BUILTINS: readonly CesqlFunction[] = [
  fn('ABS', ['Integer'], 'Integer', ([x]) => {
    const n = x as number
    return n === INT_MIN ? { value: INT_MAX, error: { kind: 'math', message: `ABS(${INT_MIN}) does not fit in 32 bits` } } : { value: Math.abs(n) }
  }),
  fn('INT', ['Any'], 'Integer', ([x]) => fromCast(explicitCast(x!, 'Integer'))),
  fn('BOOL', ['Any'], 'Boolean', ([x]) => fromCast(explicitCast(x!, 'Boolean'))),
  fn('STRING', ['Any'], 'String', ([x]) => fromCast(explicitCast(x!, 'String'))),
  fn('IS_INT', ['String'], 'Boolean', ([x]) => ({ value: implicitCast(x!, 'Integer').failure === undefined })),
  fn('IS_BOOL', ['String'], 'Boolean', ([x]) => ({ value: implicitCast(x!, 'Boolean').failure === undefined })),
  fn('LENGTH', ['String'], 'Integer', ([x]) => ({ value: length(x as string) })),
  fn('CONCAT', [], 'String', (xs) => bounded(xs.join(''), 'CONCAT'), 'String'),
  fn('CONCAT_WS', ['String'], 'String', ([sep, ...xs]) => bounded(xs.join(sep as string), 'CONCAT_WS'), 'String'),
  fn('LOWER', ['String'], 'String', ([x]) => bounded((x as string).toLowerCase(), 'LOWER')),
  fn('UPPER', ['String'], 'String', ([x]) => bounded((x as string).toUpperCase(), 'UPPER')),
  fn('TRIM', ['String'], 'String', ([x]) => ({ value: trim(x as string) })),
  fn('LEFT', ['String', 'Integer'], 'String', ([x, y]) => {
    const s = x as string
    const n = y as number
    if (n < 0) return { value: s, error: { kind: 'functionEvaluation', message: `LEFT: length ${n} is negative` } }
    return { value: chars(s).slice(0, n).join('') }
  }),
  fn('RIGHT', ['String', 'Integer'], 'String', ([x, y]) => {
    const s = x as string
    const n = y as number
    if (n < 0) return { value: s, error: { kind: 'functionEvaluation', message: `RIGHT: length ${n} is negative` } }
    const cs = chars(s)
    return { value: n >= cs.length ? s : cs.slice(cs.length - n).join('') }
  }),
  fn('SUBSTRING', ['String', 'Integer'], 'String', ([x, pos]) => substring('SUBSTRING', x as string, pos as number)),
  fn('SUBSTRING', ['String', 'Integer', 'Integer'], 'String', ([x, pos, len]) => substring('SUBSTRING', x as string, pos as number, len as number)),
]

const BY_NAME = new Map<string, CesqlFunction[]>()
for (const f of BUILTINS) BY_NAME.set(f.name, [...(BY_NAME.get(f.name) ?? []), f])

/** The built-in for a call of `name` (any case) with `arity` arguments: an exact arity first, then a variadic one. */
export function resolveFunction(name: string, arity: number): CesqlFunction | undefined {
  const overloads = BY_NAME.get(name.toUpperCase())
  if (overloads === undefined) return undefined
  return overloads.find((f) => f.rest === undefined && f.params.length === arity) ?? overloads.find((f) => f.rest !== undefined && arity >= f.params.length)
}

export function builtinFunctionNames(): string[] {
  return [...BY_NAME.keys()]
}
