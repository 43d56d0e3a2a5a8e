/**
 * `meshlet events test-filter -f TRIGGER EVENT`: does this Trigger's filter take this event?
 * Runs offline (no endpoint): the Trigger (YAML or JSON, validated as `meshlet apply` would) and
 * the event (CloudEvents JSON format) are read from files ("-" is stdin for one of them).
 *
 * Exit codes, like grep's: 0 match, 1 no match, 2 the command line or an input is wrong (the
 * message says which file and what), so a script can tell "no" from "could not tell".
 */
import { readFile } from 'node:fs/promises'
import { isMeshletError, ResourceRegistry, type ConfigIssue } from '@meshlet/core'
import { compileFilter, parseJsonEventText, triggerKind, type CesqlOutcome, type TriggerSpec } from '@meshlet/events'
import { parseAllDocuments } from 'yaml'
import { UsageError, type CliContext } from './cli-context.js'
import { toYaml } from './output.js'

const MAX_FILE_BYTES = 8 * 1024 * 1024

/** A file that cannot be used as given: exit 2 with this message, without the usage text. */
class InputError extends Error {}

export async function eventsCommand(ctx: CliContext, err: (text: string) => void = (t) => void process.stderr.write(`${t}\n`)): Promise<number> {
  const [sub, ...rest] = ctx.positionals
  if (sub !== 'test-filter') throw new UsageError(sub === undefined ? 'events needs a subcommand: test-filter' : `unknown events subcommand "${sub.slice(0, 40)}"; known: test-filter`)
  const trigger = ctx.values.filename
  if (typeof trigger !== 'string') throw new UsageError('test-filter needs the Trigger with -f FILE')
  if (rest.length !== 1) throw new UsageError(rest.length === 0 ? 'test-filter needs the event file (CloudEvents JSON) after -f TRIGGER' : `unexpected argument "${rest[1]!.slice(0, 60)}"; give one event file`)
  const eventFile = rest[0]!
  if (trigger === '-' && eventFile === '-') throw new UsageError('only one of the Trigger and the event can be read from stdin')
  try {
    return await testFilter(ctx, trigger, eventFile)
  } catch (e) {
    if (!(e instanceof InputError)) throw e
    err(`error: ${e.message}`)
    return 2
  }
}

async function testFilter(ctx: CliContext, triggerFile: string, eventPath: string): Promise<number> {
  const spec = readTrigger(triggerFile, await readSource(triggerFile))
  const filter = compileFilter({ ...(spec.filter ? { filter: spec.filter } : {}), ...(spec.filters ? { filters: spec.filters } : {}) })
  const eventText = await readSource(eventPath)
  let event
  try {
    event = parseJsonEventText(eventText)
  } catch (e) {
    throw new InputError(`${shown(eventPath)} is not a valid CloudEvent in JSON format: ${isMeshletError(e) ? e.message : (e as Error).message}`)
  }
  const { matched, cesql } = filter.explain(event)
  if (ctx.output === 'table') {
    ctx.out(matched ? 'match' : 'no match')
    for (const c of cesql) ctx.out(describeOutcome(c))
  } else {
    const report = { matched, uses: filter.uses, cesql: cesql.map((c) => ({ path: c.path, expression: c.expression, value: c.result.value, errors: c.result.errors })) }
    ctx.out(ctx.output === 'json' ? JSON.stringify(report, null, 2) : toYaml(report).trimEnd())
  }
  return matched ? 0 : 1
}

/** `filters[0].cesql: false (missingAttribute: the event has no attribute "region", column 1)` */
function describeOutcome(c: CesqlOutcome): string {
  const value = JSON.stringify(c.result.value)
  if (c.result.errors.length === 0) return `${c.path}: ${value}`
  const errors = c.result.errors.map((e) => `${e.kind}: ${e.message}${e.position !== undefined ? `, column ${e.position + 1}` : ''}`)
  return `${c.path}: ${value} (${errors.join('; ')})`
}

function shown(file: string): string {
  return file === '-' ? 'stdin' : file
}

/** The spec of the one Trigger in `text`, validated as the control endpoint would. */
function readTrigger(file: string, text: string): TriggerSpec {
  const docs = parseAllDocuments(text, { prettyErrors: true })
  const list = (Array.isArray(docs) ? docs : []).filter((d) => d.contents !== null)
  if (list.length !== 1) throw new InputError(`${shown(file)} holds ${list.length} documents; give exactly one Trigger`)
  const doc = list[0]!
  if (doc.errors.length > 0) throw new InputError(`${shown(file)} is not valid YAML or JSON:\n${doc.errors.map((e) => `  ${e.message.replace(/\n/g, '\n  ')}`).join('\n')}`)
  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    throw new InputError(`${shown(file)}: ${(e as Error).message}`)
  }
  const kind = (raw as { kind?: unknown } | null)?.kind
  if (kind !== 'Trigger') throw new InputError(`${shown(file)} is ${typeof kind === 'string' ? `a ${kind.slice(0, 40)}` : 'not a resource'}; test-filter needs a Trigger (apiVersion: meshlet.dev/v1, kind: Trigger)`)
  const issues: ConfigIssue[] = []
  const resource = new ResourceRegistry([triggerKind]).check(raw, issues)
  if (resource === undefined || issues.length > 0) {
    throw new InputError(`${shown(file)}: invalid Trigger (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${issues.map((x) => `  - ${x.path}: ${x.message}`).join('\n')}`)
  }
  return resource.spec as TriggerSpec
}

async function readSource(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = []
    let size = 0
    for await (const c of process.stdin as AsyncIterable<Buffer>) {
      size += c.length
      if (size > MAX_FILE_BYTES) throw new InputError(`stdin is over ${MAX_FILE_BYTES} bytes`)
      chunks.push(c)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
  try {
    const buf = await readFile(file)
    if (buf.length > MAX_FILE_BYTES) throw new InputError(`${file} is over ${MAX_FILE_BYTES} bytes`)
    return buf.toString('utf8')
  } catch (e) {
    if (e instanceof InputError) throw e
    const code = (e as NodeJS.ErrnoException).code
    throw new InputError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`)
  }
}
