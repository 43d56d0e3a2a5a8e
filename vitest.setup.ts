/**
 * Property tests run with one fixed seed, so a CI run is repeatable; FUZZ_SEED picks another (the
 * seed of a failure is printed with its counterexample). Longer searches: bench/fuzz.ts.
 */
import fc from 'fast-check'

fc.configureGlobal({ seed: Number(process.env.FUZZ_SEED ?? 20_261_204) })
