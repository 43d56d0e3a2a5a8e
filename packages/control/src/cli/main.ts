#!/usr/bin/env node
/**
 * The `meshlet` CLI. Exit codes: 0 done, 1 the endpoint or a resource said no (validation,
 * conflict, not found, unreachable), 2 the command line itself is wrong.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ControlClient, ControlRequestError } from '@meshlet/core'
import { isControlError } from '../errors.js'
import { applyCommand } from './apply-command.js'
import { deleteCommand, getCommand, instancesCommand, inspectCommand } from './read-commands.js'
import { schemaCommand } from './schema-command.js'
import { controlCommand, LIMIT_FLAGS, LIMIT_FLAGS_USAGE } from './control-command.js'
import { eventsCommand } from './events-command.js'
import { UsageError, type CliContext } from './cli-context.js'

type Options = NonNullable<ParseArgsConfig['options']>

const GLOBAL: Options = {
  control: { type: 'string' },
  token: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
}
const ALL_NS: Options = { 'all-namespaces': { type: 'boolean', short: 'A' } }

const COMMANDS: Record<string, { usage: string; options: Options; run: (ctx: CliContext, err: (text: string) => void) => Promise<number> }> = {
  control: {
    usage: `meshlet control [--port 7070] [--host 127.0.0.1] [--data ./meshlet-data] [--broker embedded|nats://host:4222[,...]]\n  ${LIMIT_FLAGS_USAGE}\n  Starts the control endpoint. MESHLET_TOKEN sets the admin token, MESHLET_JOIN_TOKEN the join token;\n  otherwise they are read from (or created in) the data directory. The event broker keeps its events\n  in <data>/broker (embedded, the default) or in NATS JetStream. Over a quota, a call is answered 429\n  MESHLET_ERR_QUOTA_EXCEEDED naming the flag that raises it.`,
    options: { port: { type: 'string', short: 'p' }, host: { type: 'string' }, data: { type: 'string', short: 'd' }, broker: { type: 'string' }, ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((f) => [f, { type: 'string' as const }])) },
    run: controlCommand,
  },
  apply: {
    usage: 'meshlet apply -f FILE [-f FILE ...] [--dry-run]\n  Creates or replaces every resource in the (multi-document) YAML or JSON files ("-" reads stdin)\n  and shows what changed. Nothing is applied if any resource is invalid.',
    options: { filename: { type: 'string', short: 'f', multiple: true }, 'dry-run': { type: 'boolean' } },
    run: applyCommand,
  },
  get: { usage: 'meshlet get KIND [NAME] [-n NAMESPACE | -A] [-o table|json|yaml]', options: ALL_NS, run: getCommand },
  delete: { usage: 'meshlet delete KIND NAME [-n NAMESPACE]', options: {}, run: deleteCommand },
  instances: { usage: 'meshlet instances [SERVICE] [-n NAMESPACE | -A] [-o table|json|yaml]', options: ALL_NS, run: instancesCommand },
  inspect: { usage: 'meshlet inspect SERVICE [-n NAMESPACE] [-o table|json|yaml]\n  The service\'s policies, its effective policy and its instances with the state they report.', options: {}, run: inspectCommand },
  events: {
    usage: 'meshlet events test-filter -f TRIGGER EVENT [-o json|yaml]\n  Whether the Trigger\'s filters (YAML or JSON) take the event (CloudEvents JSON); needs no endpoint.\n  Prints match or no match and each CESQL expression\'s value and errors. Exit 0 match, 1 no match, 2 bad input.',
    options: { filename: { type: 'string', short: 'f' } },
    run: eventsCommand,
  },
  schema: { usage: 'meshlet schema [KIND] [-o json|yaml]\n  JSON Schema of every resource kind (or one), for editors; needs no endpoint.', options: {}, run: schemaCommand },
}

const HELP = `meshlet: the control endpoint and its command line

Commands:
${Object.values(COMMANDS).map((c) => `  ${c.usage.split('\n')[0]}`).join('\n')}

Options of every command but control:
  --control URL        the control endpoint (default $MESHLET_CONTROL, else http://127.0.0.1:7070)
  --token TOKEN        the admin token (writes) or join token (reads) (default $MESHLET_TOKEN)
  -n, --namespace NS   default "default"
  -o, --output FORMAT  table (default), json or yaml

Exit codes: 0 done, 1 refused by the endpoint (invalid, conflict, not found, unreachable), 2 bad command line.
`

export async function main(argv: string[], out: (text: string) => void = (t) => void process.stdout.write(`${t}\n`), err: (text: string) => void = (t) => void process.stderr.write(`${t}\n`)): Promise<number> {
  const name = argv[0]
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    out(HELP)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  try {
    if (command === undefined) throw new UsageError(`unknown command "${name.slice(0, 40)}"`)
    let parsed: ReturnType<typeof parseArgs>
    try {
      parsed = parseArgs({ args: argv.slice(1), options: { ...GLOBAL, ...command.options }, allowPositionals: true, strict: true })
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
    const values = parsed.values as CliContext['values']
    if (values.help) {
      out(command.usage)
      return 0
    }
    const output = (values.output as string | undefined) ?? 'table'
    if (output !== 'table' && output !== 'json' && output !== 'yaml') throw new UsageError(`-o ${output}: use table, json or yaml`)
    if (values['all-namespaces'] && values.namespace !== undefined) throw new UsageError('use either -n or -A, not both')
    let client: ControlClient | undefined
    const token = (values.token as string | undefined) ?? (process.env.MESHLET_TOKEN || undefined)
    return await command.run({
      positionals: parsed.positionals,
      values,
      namespace: (values.namespace as string | undefined) ?? 'default',
      allNamespaces: values['all-namespaces'] === true,
      output,
      token,
      client: () => (client ??= new ControlClient({ url: (values.control as string | undefined) ?? process.env.MESHLET_CONTROL ?? 'http://127.0.0.1:7070', token })),
      out,
    }, err)
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}\nusage: ${command?.usage ?? 'meshlet COMMAND ...'}\n(run "meshlet --help" for every command)`)
      return 2
    }
    if (e instanceof ControlRequestError || isControlError(e)) {
      err(`error: ${e.message} [${e.code}]`)
      return 1
    }
    err(`error: ${(e as Error)?.message ?? String(e)}`)
    return 1
  }
}

function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

/** Runs the CLI as a process: its exit code from main() (bin/meshlet.js calls this). */
export function run(argv: string[]): void {
  main(argv).then(
    (code) => {
      // `control` keeps running; every other command ends here.
      if (code !== -1) process.exitCode = code
    },
    (e: unknown) => {
      process.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`)
      process.exitCode = 1
    },
  )
}

if (isEntryPoint()) run(process.argv.slice(2))
