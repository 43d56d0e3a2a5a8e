/**
 * The public face of CESQL: compile an expression once, evaluate it against many events.
 *
 *   const c = compileCesql("type LIKE 'order.%' AND INT(priority) > 2")
 *   if (!c.ok) throw c.error            // CesqlParseError, with .position
 *   c.expression.evaluate(event)        // { value: true, errors: [] }
 *   c.expression.matches(event)         // true: a Boolean true and no error (spec §1.2)
 *
 * Neither compiling nor evaluating throws, whatever the input: compiling yields a parse error
 * for any string that is not a valid expression, and evaluation is total (spec §3.3).
 */
import type { FilterableEvent } from '../event-attributes.js'
import type { CesqlNode } from './cesql-ast.js'
import { Evaluation } from './cesql-evaluator.js'
import { CesqlParseError } from './cesql-parse-error.js'
import { parseCesql } from './cesql-parser.js'
import type { CesqlError, CesqlErrorKind, CesqlValue } from './cesql-values.js'

export interface CesqlResult {
  /** The value (spec §3.3: always one, the zero value of its type after most errors). */
  readonly value: CesqlValue
  /** The kind of the first error, when there was one (the TCK's `error`). */
  readonly error?: CesqlErrorKind
  /** Every error, in the order raised, each with a message and the position that raised it. */
  readonly errors: readonly CesqlError[]
}

/** A call the built-ins cannot dispatch: it evaluates to false with a missingFunction error. */
export interface UnknownFunctionCall {
  readonly name: string
  readonly arity: number
  /** 0-based offset of the call in the expression. */
  readonly position: number
}

export interface CompiledCesql {
  readonly source: string
  /** Calls that can never succeed; `Trigger` validation refuses an expression with any. */
  readonly unknownFunctions: readonly UnknownFunctionCall[]
  evaluate(event: FilterableEvent): CesqlResult
  /** True when the expression is Boolean true for `event` with no error: the filter dialect's rule. */
  matches(event: FilterableEvent): boolean
}

export type CompileCesqlResult = { readonly ok: true; readonly expression: CompiledCesql } | { readonly ok: false; readonly error: CesqlParseError }

export function compileCesql(source: string): CompileCesqlResult {
  let tree: CesqlNode
  try {
    tree = parseCesql(source)
  } catch (e) {
    if (e instanceof CesqlParseError) return { ok: false, error: e }
    // Not expected (the parser throws only CesqlParseError); reported as a parse failure, never thrown.
    return { ok: false, error: new CesqlParseError(`the expression could not be parsed (${(e as Error)?.message ?? String(e)})`, 0) }
  }
  const expression: CompiledCesql = {
    source,
    unknownFunctions: unknownCalls(tree),
    evaluate: (event) => run(tree, event),
    matches(event) {
      const r = run(tree, event)
      return r.value === true && r.errors.length === 0
    },
  }
  return { ok: true, expression }
}

/** Compiles and evaluates in one step; a parse error is `{ value: false, error: 'parse' }`. For repeated use, compile once. */
export function evaluateCesql(source: string, event: FilterableEvent): CesqlResult {
  const c = compileCesql(source)
  if (!c.ok) return { value: false, error: 'parse', errors: [{ kind: 'parse', message: c.error.message, position: c.error.position }] }
  return c.expression.evaluate(event)
}

function run(tree: CesqlNode, event: FilterableEvent): CesqlResult {
  const ev = new Evaluation(event)
  let value: CesqlValue
  try {
    value = ev.evaluate(tree)
  } catch (e) {
    // Evaluation is total by construction; should an engine fault slip through, it is a generic error, not an exception.
    ev.errors.push({ kind: 'generic', message: `evaluation failed: ${(e as Error)?.message ?? String(e)}` })
    value = false
  }
  const errors = ev.errors
  return errors.length === 0 ? { value, errors } : { value, error: errors[0]!.kind, errors }
}

function unknownCalls(tree: CesqlNode): UnknownFunctionCall[] {
  const out: UnknownFunctionCall[] = []
  // Iterative walk: the tree is bounded in depth, but a work list keeps this independent of that bound.
  const todo: CesqlNode[] = [tree]
  while (todo.length > 0) {
    const n = todo.pop()!
    switch (n.type) {
      case 'call':
        if (n.fn === undefined) out.push({ name: n.name, arity: n.args.length, position: n.pos })
        todo.push(...n.args)
        break
      case 'not':
      case 'negate':
      case 'like':
        todo.push(n.operand)
        break
      case 'in':
        todo.push(n.operand, ...n.set)
        break
      case 'chain':
        todo.push(n.first, ...n.rest.map((r) => r.right))
        break
      default:
        break
    }
  }
  return out.sort((a, b) => a.position - b.position)
}
