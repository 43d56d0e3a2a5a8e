/**
 * Discovery: a Resolver emits a destination's endpoint set as insert/remove changes. Static lists,
 * DNS and (next) the control endpoint implement it; the balancer never knows which one it has.
 */

export interface EndpointAddress {
  /** Identity of the endpoint: `http://127.0.0.1:3001`, `http://[::1]:8080`. */
  readonly url: string
  readonly protocol: 'http' | 'https'
  readonly host: string
  readonly port: number
  readonly zone?: string | undefined
  readonly revision?: string | undefined
}

export type EndpointChange = { readonly type: 'insert'; readonly endpoint: EndpointAddress } | { readonly type: 'remove'; readonly url: string }

export interface ResolverListener {
  /** A batch of changes; the first call is the initial snapshot (possibly empty). */
  onChanges(changes: readonly EndpointChange[]): void
  /** Resolution failed; the listener keeps what it had (static stability). */
  onError(error: Error): void
}

export interface Resolver {
  /** Starts resolution. Contract: calls `onChanges` at least once, then on every change, until `close()`. */
  start(listener: ResolverListener): void
  close(): void
  /** What this resolver resolves, for inspect() and error messages. */
  describe(): string
}

/** Parses an `http(s)://host:port` endpoint; the port defaults to the scheme's. */
export function parseEndpointUrl(url: string, extra: { zone?: string | undefined; revision?: string | undefined } = {}): EndpointAddress {
  const u = new URL(url)
  const protocol = u.protocol === 'https:' ? 'https' : 'http'
  const port = u.port ? Number(u.port) : protocol === 'https' ? 443 : 80
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  return { url: `${protocol}://${u.host.includes(':') || u.port ? u.host : `${u.host}:${port}`}`, protocol, host, port, zone: extra.zone, revision: extra.revision }
}
