/**
 * Route path regexes run on RE2 (`re2js`, a pure-JS port), as Envoy's `safe_regex` does: matching
 * takes time linear in the path whatever the pattern, so a route from config cannot block the event
 * loop on a hostile path (`^(a|aa)+$` over 29 characters took 1.2 s on V8's backtracking engine).
 * The price is RE2's syntax: no lookaround and no backreferences; and ~1 µs a match instead of
 * ~30 ns, paid only by rules that use a regex.
 */
import { RE2JS } from 're2js'

/** RE2's own measure of a compiled program's cost; far above any real route's (a 40-character route is ~30). */
const MAX_PROGRAM_SIZE = 2000

export interface PathRegex {
  /** True when the pattern matches anywhere in `path` (as `RegExp.prototype.test`; anchor with ^ and $). */
  test(path: string): boolean
}

/** Compiles a route's path regex, or returns what is wrong with it as one sentence. */
export function compilePathRegex(source: string): PathRegex | string {
  let re: RE2JS
  try {
    re = RE2JS.compile(source)
  } catch (err) {
    const why = (err as Error).message.replace(/^error parsing regexp: /, '')
    return `is not a valid RE2 regular expression (${why}); RE2 has no lookaround and no backreferences (https://github.com/google/re2/wiki/Syntax)`
  }
  if (re.programSize() > MAX_PROGRAM_SIZE) return `compiles to a program of ${re.programSize()} instructions (at most ${MAX_PROGRAM_SIZE}); simplify it, for example with smaller repeat counts`
  return re
}
