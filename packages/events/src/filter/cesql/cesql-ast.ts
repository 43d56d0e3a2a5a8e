/**
 * The CESQL syntax tree. Operators of one precedence level form a `chain` evaluated left to right
 * (spec §3.6), so a long `a OR b OR …` is one node, not a deep tree: only parentheses, unary
 * operators and function calls nest, and the parser bounds how deep.
 */
import type { CesqlFunction } from './cesql-functions.js'
import type { LikePattern } from './like-pattern.js'
import type { CesqlType, CesqlValue } from './cesql-values.js'

export type BinaryOperator = 'AND' | 'OR' | 'XOR' | '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%'

export type CesqlNode =
  | { readonly type: 'literal'; readonly value: CesqlValue; readonly pos: number }
  | { readonly type: 'attribute'; readonly name: string; readonly pos: number }
  | { readonly type: 'exists'; readonly name: string; readonly pos: number }
  | { readonly type: 'not'; readonly operand: CesqlNode; readonly pos: number }
  | { readonly type: 'negate'; readonly operand: CesqlNode; readonly pos: number }
  | ChainNode
  | { readonly type: 'like'; readonly operand: CesqlNode; readonly pattern: LikePattern; readonly negated: boolean; readonly pos: number }
  | { readonly type: 'in'; readonly operand: CesqlNode; readonly set: readonly CesqlNode[]; readonly negated: boolean; readonly pos: number }
  | CallNode

/** `first op1 right1 op2 right2 …` at one precedence level; every operator's result has type `resultType`. */
export interface ChainNode {
  readonly type: 'chain'
  readonly resultType: CesqlType
  readonly first: CesqlNode
  readonly rest: readonly { readonly op: BinaryOperator; readonly right: CesqlNode; readonly pos: number }[]
  readonly pos: number
}

/** A function invocation; `fn` is undefined when no built-in has that name and arity (a missingFunction error when evaluated). */
export interface CallNode {
  readonly type: 'call'
  readonly name: string
  readonly fn: CesqlFunction | undefined
  readonly args: readonly CesqlNode[]
  readonly pos: number
}
