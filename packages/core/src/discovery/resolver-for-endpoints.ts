import { dnsPort } from '../config/mesh-options.js'
import { ErrorCodes, MeshletError } from '../errors.js'
import { DnsResolver } from './resolver-dns.js'
import { MergedResolver } from './resolver-merged.js'
import { parseEndpointUrl, type EndpointAddress, type Resolver } from './resolver.js'
import { StaticResolver } from './resolver-static.js'

export type ConfiguredEndpoint = string | { url: string; zone?: string | undefined; revision?: string | undefined }

/**
 * The resolver for the `endpoints` of a statically configured service: one StaticResolver for the
 * http(s) URLs, one DnsResolver per `dns://name:port`, merged when there are several. Expects
 * validated options; a dns:// URL without a port still fails with MESHLET_ERR_CONFIG_INVALID.
 */
export function resolverForEndpoints(service: string, endpoints: readonly ConfiguredEndpoint[], dnsRefresh: number): Resolver {
  const fixed: EndpointAddress[] = []
  const dns: Resolver[] = []
  for (const e of endpoints) {
    const url = typeof e === 'string' ? e : e.url
    const extra = typeof e === 'string' ? {} : { zone: e.zone, revision: e.revision }
    if (url.startsWith('dns://')) {
      const u = new URL(url.replace(/^dns:/, 'http:'))
      const port = dnsPort(url)
      if (port === undefined) throw new MeshletError(ErrorCodes.CONFIG_INVALID, `services.${service}.endpoints: "${url}" needs a port (dns://name:port).`)
      dns.push(new DnsResolver({ host: u.hostname.replace(/^\[|\]$/g, ''), port, protocol: 'http', ...extra }, dnsRefresh))
    } else fixed.push(parseEndpointUrl(url, extra))
  }
  if (dns.length === 0) return new StaticResolver(fixed)
  if (dns.length === 1 && fixed.length === 0) return dns[0]!
  return new MergedResolver([...(fixed.length ? [new StaticResolver(fixed)] : []), ...dns])
}
