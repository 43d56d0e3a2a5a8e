/**
 * Timeouts for the servers meshlet creates for an app (`createMeshServer`, `meshletServer`),
 * under any the app passes. Node's own defaults let a slowloris client hold a connection for up
 * to 90 s (a 60 s headersTimeout, checked every 30 s); here headers must arrive within 10 s and
 * the check runs every second, so that limit holds. Whole requests keep Node's 300 s
 * requestTimeout (uploads may be slow), and keep-alive connections idle out after 5 s as in Node.
 */
import type { ServerOptions } from 'node:http'

export const MESH_SERVER_DEFAULTS = {
  headersTimeout: 10_000,
  requestTimeout: 300_000,
  connectionsCheckingInterval: 1_000,
  keepAliveTimeout: 5_000,
} as const satisfies ServerOptions

/** The app's server options over meshlet's defaults. */
export function meshServerOptions(options: ServerOptions = {}): ServerOptions {
  return { ...MESH_SERVER_DEFAULTS, ...options }
}
