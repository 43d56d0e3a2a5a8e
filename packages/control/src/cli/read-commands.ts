/** `meshlet get`, `delete`, `instances` and `inspect`. */
import { formatDuration, resolvePolicy, type Instance, type Resource, type ResourceKind, type ServicePolicySpec } from '@meshlet/core'
import { ControlRequestError } from '@meshlet/core'
import type { BrokerStatus, TriggerStatus } from '@meshlet/events'
import { controlResourceRegistry } from '../resource-kinds.js'
import { UsageError, type CliContext } from './cli-context.js'
import { age, formatObjects, shortDuration, table, toYaml } from './output.js'

function kindArg(ctx: CliContext): ResourceKind | 'instances' {
  const name = ctx.positionals[0]
  if (name === undefined) throw new UsageError('name a kind, for example "servicepolicies"')
  if (/^(instances?|inst)$/i.test(name)) return 'instances'
  const registry = controlResourceRegistry()
  const kind = registry.lookup(name)
  if (kind === undefined) throw new ControlRequestError(404, 'MESHLET_ERR_UNKNOWN_KIND', `unknown kind "${name.slice(0, 40)}"; known kinds: ${registry.kinds().map((k) => `${k.plural} (${[k.kind, ...k.aliases].join(', ')})`).join('; ')}; instances`)
  return kind
}

function noMoreThan(ctx: CliContext, n: number): void {
  if (ctx.positionals.length > n) throw new UsageError(`unexpected argument "${ctx.positionals[n]}"`)
}

export async function getCommand(ctx: CliContext): Promise<number> {
  const kind = kindArg(ctx)
  noMoreThan(ctx, 2)
  const name = ctx.positionals[1]
  if (kind === 'instances') return instancesCommand({ ...ctx, positionals: name === undefined ? [] : [name] })
  if (name !== undefined && ctx.allNamespaces) throw new UsageError('-A lists every namespace; to get one resource name its namespace with -n')
  // Triggers include those advertised by instances (not resources), with the broker's view of each.
  if (kind.kind === 'Trigger') return triggersCommand(ctx, name)
  if (kind.kind === 'Broker') return brokersCommand(ctx, name)
  const client = ctx.client()
  const items = name !== undefined ? [await client.get(kind.plural, ctx.namespace, name)] : (await client.list(kind.plural, ctx.allNamespaces ? undefined : ctx.namespace)).items
  if (ctx.output !== 'table') {
    ctx.out(formatObjects(items, ctx.output, name !== undefined))
    return 0
  }
  if (items.length === 0) {
    ctx.out(`no ${kind.plural} ${ctx.allNamespaces ? 'in any namespace' : `in namespace ${ctx.namespace}`}`)
    return 0
  }
  ctx.out(table(['NAMESPACE', 'NAME', 'SERVICE', 'VERSION', 'AGE'], items.map((r) => [r.metadata.namespace, r.metadata.name, String((r.spec as { service?: unknown }).service ?? '-'), String(r.metadata.resourceVersion ?? '-'), age(r.metadata.creationTimestamp)])))
  return 0
}

export async function deleteCommand(ctx: CliContext): Promise<number> {
  const kind = kindArg(ctx)
  noMoreThan(ctx, 2)
  const name = ctx.positionals[1]
  if (name === undefined) throw new UsageError('name the resource to delete')
  if (kind === 'instances') {
    await ctx.client().deregister(name)
    ctx.out(`instance/${name} deregistered`)
    return 0
  }
  const gone = await ctx.client().delete(kind.plural, ctx.namespace, name)
  if (ctx.output === 'table') ctx.out(`${kind.kind.toLowerCase()}/${name} (namespace ${ctx.namespace}) deleted`)
  else ctx.out(formatObjects([gone], ctx.output, true))
  return 0
}

export async function instancesCommand(ctx: CliContext): Promise<number> {
  noMoreThan(ctx, 1)
  const service = ctx.positionals[0]
  const list = await ctx.client().instances({ service, namespace: ctx.allNamespaces ? undefined : ctx.namespace })
  if (ctx.output !== 'table') {
    ctx.out(formatObjects(list.items, ctx.output, false))
    return 0
  }
  if (list.items.length === 0) {
    ctx.out(`no instances${service ? ` of ${service}` : ''} ${ctx.allNamespaces ? 'in any namespace' : `in namespace ${ctx.namespace}`}`)
    return 0
  }
  ctx.out(instanceTable(list.items))
  return 0
}

function instanceTable(items: Instance[]): string {
  const now = Date.now()
  return table(
    ['SERVICE', 'NAMESPACE', 'REVISION', 'ZONE', 'ADDRESS', 'PROTOCOLS', 'AGE', 'LEASE LEFT', 'ID'],
    items.map((i) => [i.spec.service, i.metadata.namespace, i.spec.revision ?? '-', i.spec.zone ?? '-', `${i.spec.address}:${i.spec.port}`, i.spec.protocols.join(','), age(i.metadata.creationTimestamp, now), shortDuration(Date.parse(i.status.expiresAt) - now), i.metadata.name]),
  )
}

export async function inspectCommand(ctx: CliContext): Promise<number> {
  noMoreThan(ctx, 1)
  const service = ctx.positionals[0]
  if (service === undefined) throw new UsageError('name the service to inspect')
  const client = ctx.client()
  const [policies, instances] = await Promise.all([client.list('servicepolicies', ctx.namespace), client.instances({ service, namespace: ctx.namespace })])
  const mine = policies.items.filter((p) => (p.spec as ServicePolicySpec).service === service)
  // Applied in name order: a later policy overrides an earlier one field by field.
  const effective = resolvePolicy(...mine.map((p) => p.spec as ServicePolicySpec))
  if (ctx.output !== 'table') {
    ctx.out(formatObjects([{ service, namespace: ctx.namespace, policies: mine, effectivePolicy: effective, instances: instances.items }], ctx.output, true))
    return 0
  }
  const lines = [`service ${service} (namespace ${ctx.namespace}), control resourceVersion ${instances.metadata.resourceVersion}`, '']
  lines.push(mine.length === 0 ? 'policies: none (mesh defaults apply)' : `policies: ${mine.map((p: Resource) => `servicepolicy/${p.metadata.name} (version ${p.metadata.resourceVersion})`).join(', ')}`)
  const r = effective.retries
  lines.push(
    `effective: timeout ${ms(effective.timeout)}, retries ${r === false ? 'off' : `${r.attempts} (per try ${ms(r.perTryTimeout)}, budget ${r.budgetPercent}% + ${r.budgetMinPerSecond}/s)`}, balancer ${effective.balancer.type}, ` +
      `breaker ${effective.breaker === false ? 'off' : `${effective.breaker.errorThreshold}% over ${ms(effective.breaker.window)}`}, outlier ${effective.outlier === false ? 'off' : `${effective.outlier.consecutiveFailures} failures → ${ms(effective.outlier.baseEjectionTime)}`}`,
    '',
  )
  if (instances.items.length === 0) lines.push('instances: none registered')
  else {
    lines.push(`instances (${instances.items.length}):`, instanceTable(instances.items))
    const reports = instances.items.filter((i) => i.status.report !== undefined)
    for (const i of reports) lines.push('', `reported by ${i.metadata.name} (${i.spec.address}:${i.spec.port}, last heartbeat ${age(i.status.lastHeartbeat)} ago):`, toYaml(i.status.report).trimEnd().replace(/^/gm, '  '))
  }
  ctx.out(lines.join('\n'))
  return 0
}

function ms(v: number): string {
  return Number.isFinite(v) ? formatDuration(v) : 'none'
}

/** `meshlet get triggers [NAME]`: every trigger the broker runs or would run, resource or advertised, with its state. */
async function triggersCommand(ctx: CliContext, name: string | undefined): Promise<number> {
  const items: TriggerStatus[] = name !== undefined ? [await brokerRead<TriggerStatus>(ctx, `/v1/triggers/${seg(ctx.namespace)}/${seg(name)}/status`)] : (await brokerRead<{ items: TriggerStatus[] }>(ctx, `/v1/status/triggers${ctx.allNamespaces ? '' : `/${seg(ctx.namespace)}`}`)).items
  if (ctx.output !== 'table') {
    ctx.out(formatObjects(items, ctx.output, name !== undefined))
    return 0
  }
  if (items.length === 0) {
    ctx.out(`no triggers ${ctx.allNamespaces ? 'in any namespace' : `in namespace ${ctx.namespace}`} (neither Trigger resources nor triggers advertised by live instances)`)
    return 0
  }
  ctx.out(
    table(
      ['NAMESPACE', 'NAME', 'BROKER', 'SOURCE', 'SUBSCRIBER', 'READY', 'LAG', 'DELIVERED', 'RETRIED', 'DEAD-LETTERED', 'FAILED', 'REASON'],
      items.map((t) => [
        t.namespace,
        t.name,
        t.broker,
        t.source === 'advertised' ? `advertised by ${t.service ?? '?'}` : 'resource',
        t.subscriber,
        t.ready ? 'True' : 'False',
        t.lag === undefined ? '-' : String(t.lag),
        String(t.counters.delivered),
        String(t.counters.retried),
        String(t.counters.deadLettered),
        String(t.counters.failed),
        t.reason ?? '',
      ]),
    ),
  )
  return 0
}

/** `meshlet get brokers [NAME]`: Broker resources and each namespace's `default`, with the backend's figures. */
async function brokersCommand(ctx: CliContext, name: string | undefined): Promise<number> {
  let items = (await brokerRead<{ items: BrokerStatus[] }>(ctx, `/v1/status/brokers${ctx.allNamespaces ? '' : `/${seg(ctx.namespace)}`}`)).items
  if (name !== undefined) {
    items = items.filter((b) => b.name === name)
    if (items.length === 0) throw new ControlRequestError(404, 'MESHLET_ERR_NOT_FOUND', `broker ${name} does not exist in namespace ${ctx.namespace}`)
  }
  if (ctx.output !== 'table') {
    ctx.out(formatObjects(items, ctx.output, name !== undefined))
    return 0
  }
  ctx.out(
    table(
      ['NAMESPACE', 'NAME', 'SOURCE', 'BACKEND', 'EVENTS', 'TRIGGERS', 'ACCEPTED', 'DROPPED (TTL)', 'ERROR'],
      items.map((b) => [b.namespace, b.name, b.source, b.backend, b.events === undefined ? '-' : String(b.events), String(b.triggers), String(b.accepted), String(b.dropped), b.error ?? '']),
    ),
  )
  return 0
}

/** A GET of the broker's status API with the CLI's endpoint and token; refusals as ControlRequestErrors, as the client reports them. */
async function brokerRead<T>(ctx: CliContext, path: string): Promise<T> {
  const url = ctx.client().url
  let res: Response
  try {
    res = await fetch(`${url}${path}`, { headers: { accept: 'application/json', ...(ctx.token ? { authorization: `Bearer ${ctx.token}` } : {}) }, signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    throw new ControlRequestError(0, 'MESHLET_ERR_UNREACHABLE', `cannot reach the control endpoint at ${url} (${cause?.code ?? cause?.message ?? (err as Error).message}); check --control / MESHLET_CONTROL and that it is running`)
  }
  const text = await res.text()
  if (res.ok) return JSON.parse(text) as T
  let error: { code?: string; message?: string } | undefined
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error
  } catch {
    // not a meshlet answer
  }
  throw new ControlRequestError(res.status, error?.code ?? `HTTP_${res.status}`, error?.message ?? `GET ${path} answered ${res.status}: ${text.slice(0, 200)}`)
}

function seg(s: string): string {
  return encodeURIComponent(s)
}
