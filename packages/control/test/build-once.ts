/**
 * Vitest globalSetup for the control project: the crash tests run the compiled `meshlet` CLI in
 * child processes, so build it (incrementally: a no-op when dist is current) before any test.
 */
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export default function setup(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-b', fileURLToPath(new URL('../tsconfig.json', import.meta.url))], { stdio: 'inherit' })
}
