#!/usr/bin/env node
// The `meshlet` command: a committed launcher, so that installing the workspace (before anything is
// built) can link the bin; it runs the compiled CLI, and says how to build it when it is missing.
import { existsSync } from 'node:fs'

const cli = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write('meshlet: the CLI is not built yet (no dist/cli/main.js); run `npx -y pnpm@10 build` in the repository first.\n')
  process.exitCode = 1
} else {
  const { run } = await import(cli.href)
  run(process.argv.slice(2))
}
