/** CloudEvents SQL v1 (cesql/spec.md v1.0.0): compile once, evaluate per event. */
export { compileCesql, evaluateCesql, type CesqlResult, type CompiledCesql, type CompileCesqlResult, type UnknownFunctionCall } from './cesql-expression.js'
export { CesqlParseError } from './cesql-parse-error.js'
export { MAX_EXPRESSION_LENGTH, MAX_NESTING } from './cesql-parser.js'
export { MAX_STRING_RESULT } from './cesql-functions.js'
export type { CesqlError, CesqlErrorKind, CesqlType, CesqlValue } from './cesql-values.js'
