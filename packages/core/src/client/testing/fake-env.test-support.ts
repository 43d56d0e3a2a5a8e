/**
 * A StackEnv under the test's control: a clock that moves only when told (or follows the faked
 * `Date.now` of vitest's fake timers), and a scripted random source that fails loudly when a filter
 * draws more numbers than the test planned for. Test-only: not exported, not shipped.
 */
import type { StackEnv } from '../call-context.js'

export interface FakeEnv extends StackEnv {
  /** Moves the own clock forward (no effect when following Date.now). */
  advance(ms: number): void
  /** Queues numbers for `random()`, drawn in order. */
  script(...values: number[]): void
  /** How many numbers were drawn so far. */
  readonly draws: number
}

export const T0 = 1_700_000_000_000

export interface FakeEnvOptions {
  /** The start of the own clock (default T0), or 'timers' to read Date.now (vi.useFakeTimers moves it). */
  now?: number | 'timers'
  /** Numbers `random()` returns, in order; past the end it throws, unless `fallback` is set. */
  random?: readonly number[]
  fallback?: number
}

export function fakeEnv(opts: FakeEnvOptions = {}): FakeEnv {
  let t = typeof opts.now === 'number' ? opts.now : T0
  const queue = [...(opts.random ?? [])]
  let draws = 0
  const follow = opts.now === 'timers'
  return {
    now: () => (follow ? Date.now() : t),
    random: () => {
      draws++
      const v = queue.shift() ?? opts.fallback
      if (v === undefined) throw new Error(`fakeEnv: random() drawn ${draws} times, more than the ${draws - 1} the test scripted`)
      return v
    },
    advance: (ms) => {
      t += ms
    },
    script: (...values) => void queue.push(...values),
    get draws() {
      return draws
    },
  }
}
