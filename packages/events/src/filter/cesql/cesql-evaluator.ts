/**
 * Evaluates a CESQL tree against an event (spec §3). Evaluation is total: it always yields a value,
 * and collects errors beside it. The propagation rule, which the TCK pins down:
 *
 * - An operator or function whose operand raised an error does not apply itself: it returns the
 *   zero value of its own return type (`missing / 0` is 0 with only a missingAttribute error;
 *   `true AND (1 != 1 / 0)` is false with a math error).
 * - An error an operator or function raises itself comes with the value the spec gives it: a failed
 *   cast yields the target's zero value and the operator goes on (`NOT 10` is true with a cast
 *   error), `ABS(-2147483648)` is 2147483647 with a math error, `LEFT('abc', -2)` is 'abc'.
 * - A missing attribute is false (no return type is known there) with a missingAttribute error.
 * - AND and OR short-circuit on their left operand (§3.4.2).
 *
 * Recursion follows the tree's nesting, which the parser bounds (MAX_NESTING).
 */
import { cesqlAttribute, type FilterableEvent } from '../event-attributes.js'
import type { BinaryOperator, CallNode, CesqlNode, ChainNode } from './cesql-ast.js'
import { implicitCast, isInt32, typeOf, zeroOf, type CesqlError, type CesqlErrorKind, type CesqlType, type CesqlValue } from './cesql-values.js'

export class Evaluation {
  readonly errors: CesqlError[] = []

  constructor(private readonly event: FilterableEvent) {}

  private fail(kind: CesqlErrorKind, message: string, pos: number): void {
    this.errors.push({ kind, message, position: pos })
  }

  /** `value` cast to `type` by the operator at `pos`; a failure is that operator's cast error. */
  private cast(value: CesqlValue, type: CesqlType, pos: number): CesqlValue {
    const r = implicitCast(value, type)
    if (r.failure !== undefined) this.fail('cast', r.failure, pos)
    return r.value
  }

  /** Evaluates an operand; `undefined` when it raised an error (the caller then returns its zero value). */
  private operand(node: CesqlNode): CesqlValue | undefined {
    const before = this.errors.length
    const v = this.evaluate(node)
    return this.errors.length > before ? undefined : v
  }

  evaluate(node: CesqlNode): CesqlValue {
    switch (node.type) {
      case 'literal':
        return node.value
      case 'attribute': {
        const v = cesqlAttribute(this.event, node.name)
        if (v === undefined) {
          this.fail('missingAttribute', `the event has no attribute "${node.name}"`, node.pos)
          return false
        }
        return v
      }
      case 'exists':
        return cesqlAttribute(this.event, node.name) !== undefined
      case 'not': {
        const v = this.operand(node.operand)
        return v === undefined ? false : !this.cast(v, 'Boolean', node.pos)
      }
      case 'negate': {
        const v = this.operand(node.operand)
        if (v === undefined) return 0
        return this.integer(-(this.cast(v, 'Integer', node.pos) as number), '-', node.pos)
      }
      case 'like': {
        const v = this.operand(node.operand)
        if (v === undefined) return false
        return node.pattern.matches(this.cast(v, 'String', node.pos) as string) !== node.negated
      }
      case 'in':
        return this.in(node.operand, node.set, node.negated, node.pos)
      case 'chain':
        return this.chain(node)
      case 'call':
        return this.call(node)
    }
  }

  private in(operandNode: CesqlNode, set: readonly CesqlNode[], negated: boolean, pos: number): CesqlValue {
    const x = this.operand(operandNode)
    if (x === undefined) return false
    // The set's elements are cast to the left operand's type (spec §3.4.5); one that cannot be cast equals nothing.
    const type = typeOf(x)
    for (const item of set) {
      const y = this.operand(item)
      if (y === undefined) return false
      const r = implicitCast(y, type)
      if (r.failure !== undefined) this.fail('cast', r.failure, pos)
      else if (r.value === x) return !negated
    }
    return negated
  }

  private chain(node: ChainNode): CesqlValue {
    const start = this.errors.length
    let acc = this.evaluate(node.first)
    for (const step of node.rest) {
      // The left operand of this step (all of the chain so far) raised an error: zero from here on.
      if (this.errors.length > start) return zeroOf(node.resultType)
      acc = this.binary(step.op, acc, step.right, step.pos)
    }
    return acc
  }

  private binary(op: BinaryOperator, left: CesqlValue, rightNode: CesqlNode, pos: number): CesqlValue {
    if (op === 'AND' || op === 'OR') {
      const l = this.cast(left, 'Boolean', pos) as boolean
      if (op === 'AND' ? !l : l) return l
      const r = this.operand(rightNode)
      return r === undefined ? false : (this.cast(r, 'Boolean', pos) as boolean)
    }
    const right = this.operand(rightNode)
    if (right === undefined) return op === 'XOR' || isComparison(op) ? false : 0
    switch (op) {
      case 'XOR':
        return (this.cast(left, 'Boolean', pos) as boolean) !== (this.cast(right, 'Boolean', pos) as boolean)
      case '=':
      case '!=':
      case '<>': {
        // Ambiguous operator (§3.7): the right operand's type picks the definition, and the left is cast to it.
        const r = implicitCast(left, typeOf(right))
        if (r.failure !== undefined) {
          this.fail('cast', r.failure, pos)
          return false
        }
        return (r.value === right) === (op === '=')
      }
      default: {
        const a = this.cast(left, 'Integer', pos) as number
        const b = this.cast(right, 'Integer', pos) as number
        return this.arithmetic(op, a, b, pos)
      }
    }
  }

  private arithmetic(op: BinaryOperator, a: number, b: number, pos: number): CesqlValue {
    switch (op) {
      case '<':
        return a < b
      case '<=':
        return a <= b
      case '>':
        return a > b
      case '>=':
        return a >= b
      case '+':
        return this.integer(a + b, op, pos)
      case '-':
        return this.integer(a - b, op, pos)
      case '*':
        // Math.imul would wrap; the exact product of two 32-bit integers is within 2^62, so test the double.
        return this.integer(a * b, op, pos)
      case '/':
      case '%':
        if (b === 0) {
          this.fail('math', `${op === '/' ? 'division' : 'modulo'} by zero`, pos)
          return 0
        }
        // Truncated division: the quotient rounds towards zero, the remainder has the dividend's sign.
        return op === '/' ? this.integer(Math.trunc(a / b), op, pos) : a % b || 0
      default:
        return 0
    }
  }

  /** A result that must fit in 32 bits: one that overflows is 0 with a math error. */
  private integer(n: number, op: string, pos: number): number {
    if (isInt32(n)) return n || 0
    this.fail('math', `${op} overflows a 32-bit integer (${n})`, pos)
    return 0
  }

  private call(node: CallNode): CesqlValue {
    const fn = node.fn
    if (fn === undefined) {
      this.fail('missingFunction', `there is no function ${node.name} taking ${node.args.length} argument${node.args.length === 1 ? '' : 's'}`, node.pos)
      return false
    }
    const args: CesqlValue[] = []
    for (const [i, a] of node.args.entries()) {
      const v = this.operand(a)
      if (v === undefined) return zeroOf(fn.returns)
      const type = i < fn.params.length ? fn.params[i]! : fn.rest!
      args.push(type === 'Any' ? v : this.cast(v, type, a.pos))
    }
    const r = fn.call(args)
    if (r.error !== undefined) this.fail(r.error.kind, r.error.message, node.pos)
    return r.value
  }
}

function isComparison(op: BinaryOperator): boolean {
  return op === '=' || op === '!=' || op === '<>' || op === '<' || op === '<=' || op === '>' || op === '>='
}
