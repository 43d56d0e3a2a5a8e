import { ControlRequestError } from '@meshlet/core'
import { controlResourceRegistry } from '../resource-kinds.js'
import { UsageError, type CliContext } from './cli-context.js'
import { toYaml } from './output.js'

/** `meshlet schema [KIND]`: the JSON Schema of the resources, from the same definitions the endpoint validates with. */
export async function schemaCommand(ctx: CliContext): Promise<number> {
  if (ctx.positionals.length > 1) throw new UsageError(`unexpected argument "${ctx.positionals[1]}"`)
  const registry = controlResourceRegistry()
  const name = ctx.positionals[0]
  let schema = registry.jsonSchema()
  if (name !== undefined) {
    const kind = registry.lookup(name)
    if (kind === undefined) throw new ControlRequestError(404, 'MESHLET_ERR_UNKNOWN_KIND', `unknown kind "${name.slice(0, 40)}"; known kinds: ${registry.kinds().map((k) => k.kind).join(', ')}`)
    schema = { $schema: 'https://json-schema.org/draft/2020-12/schema', title: kind.kind, ...registry.kindJsonSchema(kind) }
  }
  ctx.out(ctx.output === 'yaml' ? toYaml(schema).trimEnd() : JSON.stringify(schema, null, 2))
  return 0
}
