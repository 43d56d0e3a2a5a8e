/**
 * The resource model of the control endpoint: a Kubernetes-style envelope
 * (`apiVersion`, `kind`, `metadata`, `spec`) around a kind-specific spec, one registry of kinds, and
 * validation that names every bad field by path (`spec.timeout`). The server validates with it
 * before storing; the client validates with it again before applying, so both sides agree.
 */
import { ConfigError, type ConfigIssue } from '../errors.js'
import { NAME, NAME_HINT } from '../config/mesh-options.js'
import * as s from '../config/schema.js'

export const API_VERSION = 'meshlet.dev/v1'
export const DEFAULT_NAMESPACE = 'default'

export interface ResourceMetadata {
  name: string
  namespace: string
  /** Set by the control endpoint; on a write, a precondition: the write fails with 409 unless it is the stored one. */
  resourceVersion?: number
  /** Set by the control endpoint when the resource is first created (ISO 8601). */
  creationTimestamp?: string
  labels?: Record<string, string>
}

export interface Resource<Spec = unknown> {
  apiVersion: typeof API_VERSION
  kind: string
  metadata: ResourceMetadata
  spec: Spec
}

/** One kind of resource. Later kinds (Route, AuthorizationPolicy, Trigger, Broker) are added the same way. */
export interface ResourceKind<Spec = unknown> {
  /** `ServicePolicy` */
  readonly kind: string
  /** Lowercase plural used in URLs: `servicepolicies` */
  readonly plural: string
  /** Other names accepted by the CLI and in URLs, lowercase: `servicepolicy`, `sp` */
  readonly aliases: readonly string[]
  readonly description: string
  readonly spec: s.Schema<Spec, unknown>
  /** Checks across fields that the schema cannot express; pushes issues with full paths (`spec.…`). */
  readonly crossCheck?: (spec: Spec, issues: ConfigIssue[]) => void
}

const LABEL_KEY = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/

/** A resource version given as a number or as a string of digits (YAML and JSON writers differ). */
const resourceVersionSchema: s.Schema<number, number | string> = {
  description: 'Set by the control endpoint. On a write, the write succeeds only if this is the stored version.',
  check(v, path, issues) {
    const n = typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : v
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n
    return void issues.push({ path, message: `expected a resource version (a non-negative integer), got ${JSON.stringify(v)?.slice(0, 60)}` })
  },
  jsonSchema: () => ({ oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^\\d+$' }] }),
}

const nameSchema = s.string({ pattern: NAME, patternHint: NAME_HINT, maxLength: 63 })

export const metadataSchema = s.object(
  {
    name: nameSchema,
    namespace: nameSchema,
    resourceVersion: resourceVersionSchema,
    creationTimestamp: s.string({ maxLength: 64 }),
    labels: s.record(s.string({ pattern: LABEL_KEY, patternHint: 'a label key like "team" or "example.com/team"', maxLength: 317 }), s.string({ maxLength: 256 }), { maxEntries: 64 }),
  },
  { required: ['name'] },
)

/** Erases a kind's spec type so kinds of different specs fit in one registry. */
export function defineKind<Spec>(kind: ResourceKind<Spec>): ResourceKind {
  return kind as unknown as ResourceKind
}

/** The kinds a control endpoint serves. Build one with the built-in kinds via `defaultResourceKinds()`. */
export class ResourceRegistry {
  readonly #kinds = new Map<string, ResourceKind>()
  readonly #names = new Map<string, ResourceKind>()

  constructor(kinds: readonly ResourceKind[] = []) {
    for (const k of kinds) this.register(k)
  }

  /** Adds a kind; its kind name, plural and aliases must not clash with another kind's (or with `watch`, `instances`). */
  register(kind: ResourceKind): this {
    const names = [kind.kind.toLowerCase(), kind.plural, ...kind.aliases]
    for (const n of names) {
      if (RESERVED.has(n) || this.#names.has(n)) throw new TypeError(`resource kind name "${n}" is already taken`)
    }
    this.#kinds.set(kind.kind, kind)
    for (const n of names) this.#names.set(n, kind)
    return this
  }

  /** A kind by its name, plural or alias, case-insensitively (`ServicePolicy`, `servicepolicies`, `sp`). */
  lookup(name: string): ResourceKind | undefined {
    return this.#names.get(name.toLowerCase())
  }

  kinds(): ResourceKind[] {
    return [...this.#kinds.values()]
  }

  /**
   * Validates a whole resource and returns it normalized (durations in milliseconds, namespace
   * defaulted). Throws `ConfigError` (MESHLET_ERR_CONFIG_INVALID) listing every problem by path.
   */
  validate(value: unknown): Resource {
    const issues: ConfigIssue[] = []
    const out = this.check(value, issues)
    if (out === undefined || issues.length > 0) throw new ConfigError(issues, describeResource(value))
    return out
  }

  /** Like `validate` but collects issues instead of throwing. */
  check(value: unknown, issues: ConfigIssue[]): Resource | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      issues.push({ path: '(root)', message: `expected a resource (an object with apiVersion, kind, metadata and spec), got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}` })
      return undefined
    }
    const v = value as Record<string, unknown>
    const before = issues.length
    for (const key of Object.keys(v)) {
      if (!ENVELOPE_KEYS.includes(key)) issues.push({ path: key, message: `is not a known field; a resource has ${ENVELOPE_KEYS.join(', ')}` })
    }
    if (v.apiVersion !== API_VERSION) issues.push({ path: 'apiVersion', message: v.apiVersion === undefined ? `is required; write "${API_VERSION}"` : `${JSON.stringify(v.apiVersion)?.slice(0, 60)} is not supported; write "${API_VERSION}"` })
    let kind: ResourceKind | undefined
    if (typeof v.kind !== 'string') issues.push({ path: 'kind', message: v.kind === undefined ? `is required; known kinds: ${this.knownKinds()}` : 'expected a string' })
    else {
      kind = this.#kinds.get(v.kind)
      if (kind === undefined) {
        const near = this.lookup(v.kind)
        issues.push({ path: 'kind', message: `${JSON.stringify(v.kind.slice(0, 60))} is not a known kind; ${near ? `did you mean "${near.kind}"?` : `known kinds: ${this.knownKinds()}`}` })
      }
    }
    const metadata = v.metadata === undefined ? void issues.push({ path: 'metadata', message: 'is required (with at least a name)' }) : metadataSchema.check(v.metadata, 'metadata', issues)
    let spec: unknown
    if (kind !== undefined) {
      if (v.spec === undefined) issues.push({ path: 'spec', message: 'is required' })
      else {
        const specIssues: ConfigIssue[] = []
        spec = kind.spec.check(v.spec, 'spec', specIssues)
        if (spec !== undefined && specIssues.length === 0) kind.crossCheck?.(spec, specIssues)
        issues.push(...specIssues)
      }
    }
    if (issues.length > before || kind === undefined || metadata === undefined) return undefined
    return { apiVersion: API_VERSION, kind: kind.kind, metadata: { ...metadata, namespace: metadata.namespace ?? DEFAULT_NAMESPACE }, spec }
  }

  /** JSON Schema (2020-12) of one kind's whole resource, for editors (`# yaml-language-server: $schema=…`). */
  kindJsonSchema(kind: ResourceKind): Record<string, unknown> {
    return {
      type: 'object',
      description: kind.description,
      additionalProperties: false,
      required: ['apiVersion', 'kind', 'metadata', 'spec'],
      properties: {
        apiVersion: { const: API_VERSION },
        kind: { const: kind.kind },
        metadata: metadataSchema.jsonSchema(),
        spec: kind.spec.jsonSchema(),
      },
    }
  }

  /** JSON Schema of any resource this registry knows. */
  jsonSchema(): Record<string, unknown> {
    return {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: `https://meshlet.dev/schemas/v1/resource.json`,
      title: 'meshlet resource',
      oneOf: this.kinds().map((k) => this.kindJsonSchema(k)),
    }
  }

  private knownKinds(): string {
    return [...this.#kinds.keys()].join(', ')
  }
}

const ENVELOPE_KEYS = ['apiVersion', 'kind', 'metadata', 'spec']
/** Path segments that name endpoints, not kinds. */
const RESERVED = new Set(['watch', 'instances', 'instance', 'schema', 'kinds'])

function describeResource(value: unknown): string {
  const v = (typeof value === 'object' && value !== null ? value : {}) as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }
  const kind = typeof v.kind === 'string' ? v.kind.slice(0, 60) : 'resource'
  const name = typeof v.metadata?.name === 'string' ? v.metadata.name.slice(0, 63) : undefined
  const ns = typeof v.metadata?.namespace === 'string' ? v.metadata.namespace.slice(0, 63) : DEFAULT_NAMESPACE
  return name === undefined ? kind : `${kind} ${ns}/${name}`
}

/** True when `name` is a DNS label (every resource, namespace and service name is one). */
export function isDnsLabel(name: string): boolean {
  return NAME.test(name)
}

/** The store key of a resource: `Kind/namespace/name`. */
export function resourceKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`
}
