import type { ControlClient } from '@meshlet/core'
import type { OutputFormat } from './output.js'

/** A mistake on the command line (exit code 2). */
export class UsageError extends Error {}

/** What a command gets: its parsed arguments, the shared options, and where to print. */
export interface CliContext {
  positionals: string[]
  values: Record<string, string | boolean | string[] | undefined>
  namespace: string
  allNamespaces: boolean
  output: OutputFormat
  /** The token the client sends (--token, else $MESHLET_TOKEN), if any. */
  token: string | undefined
  client(): ControlClient
  out(text: string): void
}
