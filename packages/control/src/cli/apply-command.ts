/** `meshlet apply -f FILE`: validate every document locally, then create or replace each, showing a diff. */
import { createReadStream } from 'node:fs'
import type { ConfigIssue, Resource } from '@meshlet/core'
import { controlResourceRegistry } from '../resource-kinds.js'
import { parseAllDocuments } from 'yaml'
import { ControlRequestError } from '@meshlet/core'
import { UsageError, type CliContext } from './cli-context.js'
import { toYaml } from './output.js'
import { lineDiff } from './text-diff.js'

const MAX_FILE_BYTES = 8 * 1024 * 1024

export async function applyCommand(ctx: CliContext): Promise<number> {
  const files = (ctx.values.filename as string[] | undefined) ?? []
  if (files.length === 0) throw new UsageError('apply needs at least one -f FILE (or -f - for stdin)')
  if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument "${ctx.positionals[0]}"; name files with -f`)
  const dryRun = ctx.values['dry-run'] === true
  if (ctx.token === undefined) throw new UsageError('apply changes configuration and needs the admin token: pass --token or set MESHLET_TOKEN (the token `meshlet control` printed as "admin token")')
  const registry = controlResourceRegistry()

  const docs: { where: string; raw: Record<string, unknown>; resource: Resource }[] = []
  const problems: string[] = []
  for (const file of files) {
    const text = await readSource(file)
    const parsed = parseAllDocuments(text, { prettyErrors: true })
    const list = Array.isArray(parsed) ? parsed : []
    for (const [i, doc] of list.entries()) {
      const where = `${file === '-' ? 'stdin' : file}${list.length > 1 ? ` (document ${i + 1})` : ''}`
      if (doc.errors.length > 0) {
        problems.push(`${where}: not valid YAML:\n${doc.errors.map((e) => `  ${e.message.replace(/\n/g, '\n  ')}`).join('\n')}`)
        continue
      }
      let raw: unknown
      try {
        raw = doc.toJS({ maxAliasCount: 100 })
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message}`)
        continue
      }
      if (raw === null || raw === undefined) continue
      if (typeof raw === 'object' && !Array.isArray(raw)) {
        const meta = (raw as { metadata?: unknown }).metadata
        if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) (meta as Record<string, unknown>).namespace ??= ctx.namespace
      }
      const issues: ConfigIssue[] = []
      const resource = registry.check(raw, issues)
      if (resource === undefined || issues.length > 0) {
        problems.push(`${where}: invalid ${describe(raw)} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${issues.map((x) => `  - ${x.path}: ${x.message}`).join('\n')}`)
        continue
      }
      docs.push({ where, raw: raw as Record<string, unknown>, resource })
    }
  }
  if (problems.length > 0) {
    throw new ControlRequestError(422, 'MESHLET_ERR_CONFIG_INVALID', `nothing was applied:\n${problems.join('\n')}`)
  }
  if (docs.length === 0) throw new UsageError(`no resources in ${files.join(', ')}`)

  const client = ctx.client()
  const results: { kind: string; namespace: string; name: string; result: string; resourceVersion: number | undefined }[] = []
  for (const { raw, resource } of docs) {
    const kind = registry.lookup(resource.kind)!
    const { namespace, name } = resource.metadata
    const current = await client.find(kind.plural, namespace, name)
    const { object, result } = await client.put(raw as unknown as Resource, { dryRun, kind: kind.plural })
    results.push({ kind: resource.kind, namespace, name, result, resourceVersion: dryRun ? undefined : object.metadata.resourceVersion })
    if (ctx.output !== 'table') continue
    ctx.out(`${kind.kind.toLowerCase()}/${name} (namespace ${namespace}) ${result}${dryRun ? ' (dry run)' : ''}`)
    if (result !== 'unchanged') {
      const diff = lineDiff(current ? toYaml(comparable(current)) : '', toYaml(comparable(object)))
      if (diff !== '') ctx.out(diff.replace(/^/gm, '    '))
    }
  }
  if (ctx.output === 'json') ctx.out(JSON.stringify(results, null, 2))
  if (ctx.output === 'yaml') ctx.out(toYaml(results).trimEnd())
  return 0
}

/** The parts of a resource a person changes: not the versions and timestamps the endpoint sets. */
function comparable(r: Resource): unknown {
  const { name, namespace, labels } = r.metadata
  return { metadata: { name, namespace, ...(labels ? { labels } : {}) }, spec: r.spec }
}

function describe(raw: unknown): string {
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }
  const kind = typeof r.kind === 'string' ? r.kind.slice(0, 40) : 'resource'
  return typeof r.metadata?.name === 'string' ? `${kind} ${String(r.metadata.namespace).slice(0, 63)}/${r.metadata.name.slice(0, 63)}` : kind
}

/**
 * The text of `-f FILE` (or stdin for `-`), read as a stream with one cap for both, so that
 * `-f /dev/zero` or a huge file stops at MAX_FILE_BYTES instead of filling memory first.
 */
async function readSource(file: string): Promise<string> {
  const what = file === '-' ? 'stdin' : file
  const chunks: Buffer[] = []
  let size = 0
  try {
    const input = file === '-' ? process.stdin : createReadStream(file)
    for await (const c of input as AsyncIterable<Buffer>) {
      size += c.length
      if (size > MAX_FILE_BYTES) {
        if (input !== process.stdin) (input as ReturnType<typeof createReadStream>).destroy()
        throw new UsageError(`${what} is over ${MAX_FILE_BYTES} bytes; apply it in smaller files`)
      }
      chunks.push(c)
    }
  } catch (e) {
    if (e instanceof UsageError) throw e
    // Not a command-line mistake (exit 2) but a file that is not there or not readable (exit 1).
    const code = (e as NodeJS.ErrnoException).code
    throw new Error(`cannot read ${what}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`)
  }
  return Buffer.concat(chunks).toString('utf8')
}
