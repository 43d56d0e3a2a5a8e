import { ConfigError, type ConfigIssue } from '@meshlet/core'
import { isValidStreamPrefix } from './jetstream-names.js'

/** TLS to the NATS servers (PEM text, or file names); `true` in the URL scheme `tls://` also turns it on. */
export interface JetStreamTlsOptions {
  ca?: string
  caFile?: string
  cert?: string
  certFile?: string
  key?: string
  keyFile?: string
  /** TLS before the NATS INFO exchange (servers with `handshake_first`). */
  handshakeFirst?: boolean
  rejectUnauthorized?: boolean
}

export interface JetStreamBackendOptions {
  /** `nats://host:4222`, `host:port`, or several for a cluster. */
  servers: string | readonly string[]
  user?: string
  pass?: string
  token?: string
  tls?: JetStreamTlsOptions
  /** The first part of every stream name and subject (letters, digits, `-`). Default `meshlet`. */
  streamPrefix?: string
  /** Copies of each stream in a JetStream cluster (1–5). Default 1. */
  replicas?: number
  /** Events older than this (ms) are removed, acked or not; 0 keeps them until the broker is deleted. Default 7 days. */
  maxAge?: number
  /** How long (ms) JetStream remembers an event's (source, id) to drop a republished copy. Default 2 minutes. */
  duplicateWindow?: number
  /** The connection's name, as `nats-server` monitoring shows it. Default `meshlet-events`. */
  connectionName?: string
}

export interface ResolvedJetStreamOptions {
  readonly servers: string[]
  readonly user: string | undefined
  readonly pass: string | undefined
  readonly token: string | undefined
  readonly tls: JetStreamTlsOptions | undefined
  readonly streamPrefix: string
  readonly replicas: number
  readonly maxAgeMs: number
  readonly duplicateWindowMs: number
  readonly connectionName: string
}

const DAY_MS = 24 * 60 * 60 * 1000

/** Checks the options; every problem at once, as a ConfigError (MESHLET_ERR_CONFIG_INVALID). */
export function resolveJetStreamOptions(options: JetStreamBackendOptions): ResolvedJetStreamOptions {
  const issues: ConfigIssue[] = []
  const at = (path: string, message: string): void => {
    issues.push({ path, message })
  }
  const servers = typeof options.servers === 'string' ? [options.servers] : Array.isArray(options.servers) ? [...(options.servers as readonly unknown[])] : []
  if (servers.length === 0) at('servers', 'give at least one NATS server URL, e.g. nats://127.0.0.1:4222')
  servers.forEach((server, i) => {
    if (typeof server !== 'string' || server.trim().length === 0) at(`servers[${i}]`, 'must be a non-empty URL string')
  })
  for (const key of ['user', 'pass', 'token', 'connectionName'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'string') at(key, 'must be a string')
  }
  if ((options.user === undefined) !== (options.pass === undefined)) at(options.user === undefined ? 'user' : 'pass', 'user and pass go together')
  if (options.token !== undefined && options.user !== undefined) at('token', 'give a token or user and pass, not both')
  const streamPrefix = options.streamPrefix ?? 'meshlet'
  if (typeof streamPrefix !== 'string' || !isValidStreamPrefix(streamPrefix)) {
    at('streamPrefix', 'must be 1–64 letters, digits or dashes (it starts stream names and subjects; `_` separates their parts)')
  }
  const replicas = options.replicas ?? 1
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) at('replicas', 'must be an integer from 1 to 5 (JetStream’s limit)')
  const maxAgeMs = options.maxAge ?? 7 * DAY_MS
  if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0) at('maxAge', 'must be a whole number of milliseconds, 0 for no limit')
  const duplicateWindowMs = options.duplicateWindow ?? 120_000
  if (!Number.isInteger(duplicateWindowMs) || duplicateWindowMs < 1) at('duplicateWindow', 'must be a positive whole number of milliseconds')
  // JetStream refuses a duplicate window longer than max age.
  else if (maxAgeMs > 0 && duplicateWindowMs > maxAgeMs) at('duplicateWindow', 'must not be longer than maxAge')
  if (issues.length > 0) throw new ConfigError(issues, 'JetStream broker options')
  return {
    servers: servers as string[],
    user: options.user,
    pass: options.pass,
    token: options.token,
    tls: options.tls,
    streamPrefix,
    replicas,
    maxAgeMs,
    duplicateWindowMs,
    connectionName: options.connectionName ?? 'meshlet-events',
  }
}
