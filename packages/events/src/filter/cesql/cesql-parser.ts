/**
 * The CESQL parser (spec §2, precedence of §3.6): recursive descent, one function per precedence
 * level, lowest first:
 *
 *   logic          := comparison (("AND" | "OR" | "XOR") comparison)*      one level, left to right
 *   comparison     := additive (("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") additive)*
 *   additive       := multiplicative (("+" | "-") multiplicative)*
 *   multiplicative := postfix (("*" | "/" | "%") postfix)*
 *   postfix        := unary ("NOT"? "LIKE" string-literal | "NOT"? "IN" "(" logic ("," logic)* ")")*
 *   unary          := "NOT" unary | "-" unary | ("+" | "-") integer | primary
 *   primary        := literal | "EXISTS" identifier | function "(" args? ")" | identifier | "(" logic ")"
 *
 * AND, OR and XOR share one level evaluated left to right as §3.6 says (sdk-go's grammar makes them
 * right-associative instead; the two differ only for mixed AND/OR without parentheses).
 *
 * Hostile input: the expression is at most MAX_EXPRESSION_LENGTH characters and nests (parentheses,
 * unary operators, function calls, IN sets) at most MAX_NESTING deep, so neither parsing nor
 * evaluation can exhaust the stack; past either bound the parse fails with a clear error.
 */
import type { BinaryOperator, CesqlNode, ChainNode } from './cesql-ast.js'
import { resolveFunction } from './cesql-functions.js'
import { tokenize, type Operator, type Token } from './cesql-lexer.js'
import { CesqlParseError } from './cesql-parse-error.js'
import { LikePattern } from './like-pattern.js'
import { INT_MAX, type CesqlType } from './cesql-values.js'

export const MAX_EXPRESSION_LENGTH = 4096
export const MAX_NESTING = 64

const KEYWORDS = new Set(['AND', 'OR', 'XOR', 'NOT', 'LIKE', 'IN', 'EXISTS', 'TRUE', 'FALSE'])
const VALUE_IDENTIFIER = /^[a-zA-Z0-9]+$/
const FUNCTION_IDENTIFIER = /^[a-zA-Z][a-zA-Z_]*$/

interface Level {
  readonly ops: ReadonlySet<string>
  readonly resultType: CesqlType
}
const LOGIC: Level = { ops: new Set(['AND', 'OR', 'XOR']), resultType: 'Boolean' }
const COMPARISON: Level = { ops: new Set(['=', '!=', '<>', '<', '<=', '>', '>=']), resultType: 'Boolean' }
const ADDITIVE: Level = { ops: new Set(['+', '-']), resultType: 'Integer' }
const MULTIPLICATIVE: Level = { ops: new Set(['*', '/', '%']), resultType: 'Integer' }

/** Parses a whole expression; throws CesqlParseError (and nothing else) when it is not valid. */
export function parseCesql(expression: string): CesqlNode {
  if (typeof expression !== 'string') throw new CesqlParseError(`expected the expression as a string, got ${expression === null ? 'null' : typeof expression}`, 0)
  if (expression.length > MAX_EXPRESSION_LENGTH) throw new CesqlParseError(`the expression is ${expression.length} characters long; at most ${MAX_EXPRESSION_LENGTH} are allowed`, MAX_EXPRESSION_LENGTH)
  return new Parser(tokenize(expression)).parseAll()
}

class Parser {
  #i = 0
  #depth = 0

  constructor(private readonly tokens: readonly Token[]) {}

  parseAll(): CesqlNode {
    if (this.peek().kind === 'end') throw new CesqlParseError('the expression is empty', 0)
    const node = this.logic()
    const t = this.peek()
    if (t.kind !== 'end') throw new CesqlParseError(`unexpected ${describe(t)}${t.kind === 'op' && t.text === ')' ? ' (no "(" opens it)' : '; an operator (AND, OR, =, +, LIKE, IN, …) was expected'}`, t.pos)
    return node
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.#i + offset, this.tokens.length - 1)]!
  }

  private next(): Token {
    return this.tokens[Math.min(this.#i++, this.tokens.length - 1)]!
  }

  private isOp(t: Token, op: Operator): boolean {
    return t.kind === 'op' && t.text === op
  }

  private isKeyword(t: Token, word: string): boolean {
    return t.kind === 'name' && t.text.toUpperCase() === word
  }

  private expectOp(op: Operator, context: string): Token {
    const t = this.next()
    if (!this.isOp(t, op)) throw new CesqlParseError(`expected "${op}" ${context}, got ${describe(t)}`, t.pos)
    return t
  }

  /** Runs `parse` one nesting level deeper, refusing past MAX_NESTING. */
  private nested<T>(pos: number, parse: () => T): T {
    if (++this.#depth > MAX_NESTING) throw new CesqlParseError(`the expression nests more than ${MAX_NESTING} levels deep (parentheses, NOT, -, function calls)`, pos)
    try {
      return parse()
    } finally {
      this.#depth--
    }
  }

  private chain(level: Level, operand: () => CesqlNode): CesqlNode {
    const first = operand()
    const rest: { op: BinaryOperator; right: CesqlNode; pos: number }[] = []
    for (;;) {
      const t = this.peek()
      const op = t.kind === 'op' ? t.text : t.kind === 'name' ? t.text.toUpperCase() : undefined
      if (op === undefined || !level.ops.has(op)) break
      this.next()
      rest.push({ op: op as BinaryOperator, right: operand(), pos: t.pos })
    }
    if (rest.length === 0) return first
    const node: ChainNode = { type: 'chain', resultType: level.resultType, first, rest, pos: first.pos }
    return node
  }

  private logic(): CesqlNode {
    return this.chain(LOGIC, () => this.comparison())
  }

  private comparison(): CesqlNode {
    return this.chain(COMPARISON, () => this.additive())
  }

  private additive(): CesqlNode {
    return this.chain(ADDITIVE, () => this.multiplicative())
  }

  private multiplicative(): CesqlNode {
    return this.chain(MULTIPLICATIVE, () => this.postfix())
  }

  private postfix(): CesqlNode {
    let node = this.unary()
    for (;;) {
      const t = this.peek()
      const negated = this.isKeyword(t, 'NOT')
      const op = negated ? this.peek(1) : t
      if (this.isKeyword(op, 'LIKE')) {
        this.#i += negated ? 2 : 1
        const p = this.next()
        if (p.kind !== 'string') throw new CesqlParseError(`the pattern of LIKE must be a string literal, got ${describe(p)}`, p.pos)
        node = { type: 'like', operand: node, pattern: new LikePattern(p.value), negated, pos: op.pos }
      } else if (this.isKeyword(op, 'IN')) {
        this.#i += negated ? 2 : 1
        const open = this.expectOp('(', 'after IN (a set is written "(a, b, …)")')
        const set = this.nested(open.pos, () => {
          const items = [this.logic()]
          while (this.isOp(this.peek(), ',')) {
            this.next()
            items.push(this.logic())
          }
          return items
        })
        this.expectOp(')', 'to close the set of IN')
        node = { type: 'in', operand: node, set, negated, pos: op.pos }
      } else {
        if (negated) throw new CesqlParseError(`NOT here must be followed by LIKE or IN, got ${describe(op)}`, op.pos)
        return node
      }
    }
  }

  private unary(): CesqlNode {
    const t = this.peek()
    if (this.isKeyword(t, 'NOT')) {
      this.next()
      return { type: 'not', operand: this.nested(t.pos, () => this.unary()), pos: t.pos }
    }
    if (t.kind === 'op' && (t.text === '-' || t.text === '+')) {
      const n = this.peek(1)
      // A sign before digits is part of the literal (spec §2.2), which is how -2147483648 can be written.
      if (n.kind === 'integer') {
        this.#i += 2
        return { type: 'literal', value: this.integer(n, t.text === '-'), pos: t.pos }
      }
      if (t.text === '+') throw new CesqlParseError(`"+" is not a unary operator; it may only sign an integer literal, got ${describe(n)} after it`, t.pos)
      this.next()
      return { type: 'negate', operand: this.nested(t.pos, () => this.unary()), pos: t.pos }
    }
    return this.primary()
  }

  private integer(t: Token & { kind: 'integer' }, negative: boolean): number {
    const digits = t.text.replace(/^0+(?=\d)/, '')
    const limit = negative ? '2147483648' : String(INT_MAX)
    if (digits.length > limit.length || (digits.length === limit.length && digits > limit)) {
      throw new CesqlParseError(`${negative ? '-' : ''}${t.text.length > 20 ? `${t.text.slice(0, 20)}…` : t.text} does not fit in a 32-bit integer`, t.pos)
    }
    const n = Number(digits)
    return negative ? -n : n
  }

  private primary(): CesqlNode {
    const t = this.next()
    if (t.kind === 'integer') return { type: 'literal', value: this.integer(t, false), pos: t.pos }
    if (t.kind === 'string') return { type: 'literal', value: t.value, pos: t.pos }
    if (t.kind === 'op' && t.text === '(') {
      const inner = this.nested(t.pos, () => this.logic())
      this.expectOp(')', `to close the "(" at column ${t.pos + 1}`)
      return inner
    }
    if (t.kind !== 'name') throw new CesqlParseError(`expected a value (a literal, an attribute, a function call or "("), got ${describe(t)}`, t.pos)
    const upper = t.text.toUpperCase()
    if (this.isOp(this.peek(), '(')) return this.call(t)
    if (upper === 'TRUE' || upper === 'FALSE') return { type: 'literal', value: upper === 'TRUE', pos: t.pos }
    if (upper === 'EXISTS') {
      const id = this.next()
      if (id.kind !== 'name' || KEYWORDS.has(id.text.toUpperCase()) || !VALUE_IDENTIFIER.test(id.text)) {
        throw new CesqlParseError(`EXISTS must be followed by an attribute name, got ${describe(id)}`, id.pos)
      }
      return { type: 'exists', name: id.text.toLowerCase(), pos: t.pos }
    }
    if (KEYWORDS.has(upper)) throw new CesqlParseError(`expected a value, got the keyword ${upper}`, t.pos)
    if (!VALUE_IDENTIFIER.test(t.text)) throw new CesqlParseError(`${JSON.stringify(t.text.slice(0, 40))} is not an attribute name (letters and digits only)`, t.pos)
    // Attribute names are lowercase in CloudEvents; the identifier is matched in any case (the TCK's `EXISTS SOURCE`).
    return { type: 'attribute', name: t.text.toLowerCase(), pos: t.pos }
  }

  private call(name: Token & { kind: 'name' }): CesqlNode {
    if (!FUNCTION_IDENTIFIER.test(name.text)) throw new CesqlParseError(`${JSON.stringify(name.text.slice(0, 40))} is not a function name (letters and "_", starting with a letter)`, name.pos)
    const open = this.next()
    const args = this.nested(open.pos, () => {
      const list: CesqlNode[] = []
      if (this.isOp(this.peek(), ')')) return list
      list.push(this.logic())
      while (this.isOp(this.peek(), ',')) {
        this.next()
        list.push(this.logic())
      }
      return list
    })
    this.expectOp(')', `to close the arguments of ${name.text}`)
    const fnName = name.text.toUpperCase()
    return { type: 'call', name: fnName, fn: resolveFunction(fnName, args.length), args, pos: name.pos }
  }
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'end':
      return 'the end of the expression'
    case 'name':
      return KEYWORDS.has(t.text.toUpperCase()) ? `the keyword ${t.text.toUpperCase()}` : `"${t.text.slice(0, 40)}"`
    case 'integer':
      return `the number ${t.text.slice(0, 20)}`
    case 'string':
      return 'a string literal'
    case 'op':
      return `"${t.text}"`
  }
}
