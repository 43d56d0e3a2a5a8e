import { lookup } from 'node:dns/promises'
import { MeshletError, ErrorCodes } from '../errors.js'
import { type EndpointAddress, type EndpointChange, type Resolver, type ResolverListener } from './resolver.js'

export interface DnsTarget {
  host: string
  port: number
  protocol: 'http' | 'https'
  zone?: string | undefined
  revision?: string | undefined
}

type Lookup = (host: string) => Promise<{ address: string; family: number }[]>

/**
 * Resolves `dns://name:port` to its A and AAAA records through the system resolver (so /etc/hosts
 * and search domains apply, as for any other client on the host) and re-resolves every `refresh` ms.
 * A failed resolution keeps the last good set: DNS trouble must not empty a working destination.
 */
export class DnsResolver implements Resolver {
  readonly #target: DnsTarget
  readonly #refresh: number
  readonly #lookup: Lookup
  #timer: NodeJS.Timeout | undefined
  #current = new Map<string, EndpointAddress>()
  #closed = false

  constructor(target: DnsTarget, refresh: number, lookupFn: Lookup = (host) => lookup(host, { all: true })) {
    this.#target = target
    this.#refresh = refresh
    this.#lookup = lookupFn
  }

  start(listener: ResolverListener): void {
    let first = true
    const run = async (): Promise<void> => {
      try {
        const records = await this.#lookup(this.#target.host)
        if (this.#closed) return
        const next = new Map<string, EndpointAddress>()
        for (const r of records) {
          const host = r.address
          const url = `${this.#target.protocol}://${r.family === 6 ? `[${host}]` : host}:${this.#target.port}`
          next.set(url, { url, host, port: this.#target.port, protocol: this.#target.protocol, zone: this.#target.zone, revision: this.#target.revision })
        }
        const changes: EndpointChange[] = []
        for (const [url, endpoint] of next) if (!this.#current.has(url)) changes.push({ type: 'insert', endpoint })
        for (const url of this.#current.keys()) if (!next.has(url)) changes.push({ type: 'remove', url })
        this.#current = next
        if (changes.length > 0 || first) listener.onChanges(changes)
        first = false
      } catch (cause) {
        if (this.#closed) return
        listener.onError(
          new MeshletError(ErrorCodes.DISCOVERY, `DNS lookup of ${this.#target.host} failed (${(cause as Error).message}); keeping the ${this.#current.size} endpoint(s) from the last good answer and trying again in ${this.#refresh}ms`, { cause }),
        )
        if (first) listener.onChanges([])
        first = false
      }
      if (!this.#closed) {
        this.#timer = setTimeout(() => void run(), this.#refresh)
        this.#timer.unref()
      }
    }
    void run()
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }

  describe(): string {
    return `dns://${this.#target.host}:${this.#target.port} (every ${this.#refresh}ms)`
  }
}
