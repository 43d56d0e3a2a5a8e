import { lookup } from 'node:dns/promises'
import { describe, expect, it } from 'vitest'
import { ErrorCodes, isMeshletError } from '../errors.js'
import { ControlResolver } from './resolver-control.js'
import { DnsResolver } from './resolver-dns.js'
import { resolverForEndpoints } from './resolver-for-endpoints.js'
import { MergedResolver } from './resolver-merged.js'
import { StaticResolver } from './resolver-static.js'
import { parseEndpointUrl, type EndpointChange, type Resolver } from './resolver.js'

/** Starts `resolver` and records what it reports; `next()` resolves with the next batch. */
function follow(resolver: Resolver) {
  const batches: EndpointChange[][] = []
  const errors: Error[] = []
  let waiting: ((b: readonly EndpointChange[]) => void) | undefined
  let waitingError: ((e: Error) => void) | undefined
  resolver.start({
    onChanges: (changes) => {
      batches.push([...changes])
      waiting?.(changes)
      waiting = undefined
    },
    onError: (e) => {
      errors.push(e)
      waitingError?.(e)
      waitingError = undefined
    },
  })
  return {
    batches,
    errors,
    next: () => new Promise<readonly EndpointChange[]>((r) => (waiting = r)),
    nextError: () => new Promise<Error>((r) => (waitingError = r)),
    /** The endpoint set after every batch so far. */
    urls: () => {
      const set = new Set<string>()
      for (const b of batches) for (const c of b) {
        if (c.type === 'insert') set.add(c.endpoint.url)
        else set.delete(c.url)
      }
      return [...set].sort()
    },
  }
}

const ep = (url: string, extra: { zone?: string; revision?: string } = {}) => parseEndpointUrl(url, extra)

describe('parseEndpointUrl', () => {
  it.each([
    ['http://127.0.0.1:3001', { url: 'http://127.0.0.1:3001', protocol: 'http', host: '127.0.0.1', port: 3001 }],
    ['http://payments', { url: 'http://payments:80', protocol: 'http', host: 'payments', port: 80 }],
    ['https://10.0.0.7', { url: 'https://10.0.0.7:443', protocol: 'https', host: '10.0.0.7', port: 443 }],
    ['http://[::1]:8080', { url: 'http://[::1]:8080', protocol: 'http', host: '::1', port: 8080 }],
  ])('%s', (url, expected) => {
    expect(parseEndpointUrl(url)).toMatchObject(expected)
  })

  it('keeps zone and revision', () => {
    expect(parseEndpointUrl('http://a:1', { zone: 'z1', revision: 'v2' })).toMatchObject({ zone: 'z1', revision: 'v2' })
  })
})

describe('StaticResolver', () => {
  it('reports its endpoints once, as inserts, and describes them', () => {
    const r = new StaticResolver([ep('http://127.0.0.1:1'), ep('http://127.0.0.1:2')])
    const f = follow(r)
    expect(f.batches).toEqual([[{ type: 'insert', endpoint: ep('http://127.0.0.1:1') }, { type: 'insert', endpoint: ep('http://127.0.0.1:2') }]])
    expect(r.describe()).toBe('static list (http://127.0.0.1:1, http://127.0.0.1:2)')
  })

  it('reports an empty first snapshot for no endpoints (the contract: at least one onChanges)', () => {
    expect(follow(new StaticResolver([])).batches).toEqual([[]])
  })
})

describe('DnsResolver', () => {
  it('resolves localhost through the system resolver to its addresses, with the port', async () => {
    const expected = (await lookup('localhost', { all: true })).map((a) => (a.family === 6 ? `http://[${a.address}]:8080` : `http://${a.address}:8080`)).sort()
    const r = new DnsResolver({ host: 'localhost', port: 8080, protocol: 'http', zone: 'z1' }, 60_000)
    try {
      const f = follow(r)
      const first = await f.next()
      expect(f.urls()).toEqual(expected)
      expect(first.every((c) => c.type === 'insert' && c.endpoint.zone === 'z1' && c.endpoint.port === 8080)).toBe(true)
      expect(r.describe()).toBe('dns://localhost:8080 (every 60000ms)')
    } finally {
      r.close()
    }
  })

  it('re-resolves every refresh and reports only what changed', async () => {
    const answers = [[{ address: '10.0.0.1', family: 4 }], [{ address: '10.0.0.1', family: 4 }, { address: 'fd00::2', family: 6 }], [{ address: 'fd00::2', family: 6 }]]
    let i = 0
    const r = new DnsResolver({ host: 'payments.internal', port: 80, protocol: 'http' }, 5, async () => answers[Math.min(i++, answers.length - 1)]!)
    try {
      const f = follow(r)
      expect(await f.next()).toEqual([{ type: 'insert', endpoint: expect.objectContaining({ url: 'http://10.0.0.1:80' }) }])
      expect(await f.next()).toEqual([{ type: 'insert', endpoint: expect.objectContaining({ url: 'http://[fd00::2]:80', host: 'fd00::2' }) }])
      expect(await f.next()).toEqual([{ type: 'remove', url: 'http://10.0.0.1:80' }])
    } finally {
      r.close()
    }
  })

  it('keeps the last good set when a lookup fails: a MESHLET_ERR_DISCOVERY error, no removal', async () => {
    let fail = false
    const r = new DnsResolver({ host: 'payments.internal', port: 80, protocol: 'http' }, 5, async () => {
      if (fail) throw Object.assign(new Error('getaddrinfo EAI_AGAIN payments.internal'), { code: 'EAI_AGAIN' })
      return [{ address: '10.0.0.1', family: 4 }]
    })
    try {
      const f = follow(r)
      await f.next()
      fail = true
      const error = await f.nextError()
      expect(isMeshletError(error, ErrorCodes.DISCOVERY)).toBe(true)
      expect(error.message).toMatch(/DNS lookup of payments.internal failed .*EAI_AGAIN.*keeping the 1 endpoint/)
      expect(f.urls()).toEqual(['http://10.0.0.1:80'])
    } finally {
      r.close()
    }
  })

  it('reports an empty first snapshot when the very first lookup fails', async () => {
    const r = new DnsResolver({ host: 'nowhere.invalid', port: 80, protocol: 'http' }, 60_000, async () => Promise.reject(new Error('ENOTFOUND')))
    try {
      const f = follow(r)
      expect(await f.next()).toEqual([])
      expect(f.errors).toHaveLength(1)
    } finally {
      r.close()
    }
  })

  it('reports nothing after close()', async () => {
    let release: (v: { address: string; family: number }[]) => void = () => {}
    const r = new DnsResolver({ host: 'slow', port: 80, protocol: 'http' }, 60_000, () => new Promise((res) => (release = res)))
    const f = follow(r)
    r.close()
    release([{ address: '10.0.0.1', family: 4 }])
    await new Promise((res) => setImmediate(res))
    expect(f.batches).toEqual([])
  })
})

describe('ControlResolver', () => {
  it('turns full sets into inserts and removes, and a zone or revision change into a remove + insert', () => {
    const r = new ControlResolver('payments', 'http://control:7070', [ep('http://10.0.0.1:80')])
    const f = follow(r)
    expect(f.batches).toEqual([[{ type: 'insert', endpoint: ep('http://10.0.0.1:80') }]])
    r.update([ep('http://10.0.0.1:80'), ep('http://10.0.0.2:80')])
    expect(f.batches[1]).toEqual([{ type: 'insert', endpoint: ep('http://10.0.0.2:80') }])
    r.update([ep('http://10.0.0.1:80', { zone: 'b' }), ep('http://10.0.0.2:80')])
    expect(f.batches[2]).toEqual([{ type: 'remove', url: 'http://10.0.0.1:80' }, { type: 'insert', endpoint: ep('http://10.0.0.1:80', { zone: 'b' }) }])
    r.update([])
    expect(f.batches[3]).toEqual([{ type: 'remove', url: 'http://10.0.0.1:80' }, { type: 'remove', url: 'http://10.0.0.2:80' }])
    expect(r.describe()).toBe('control endpoint http://control:7070 (service payments)')
  })

  it('keeps an update that arrives before start() as its first snapshot, and reports nothing after close()', () => {
    const r = new ControlResolver('payments', 'http://c', [])
    r.update([ep('http://10.0.0.3:80')])
    const f = follow(r)
    expect(f.urls()).toEqual(['http://10.0.0.3:80'])
    r.close()
    r.update([])
    expect(f.batches).toHaveLength(1)
  })
})

describe('MergedResolver', () => {
  it('holds the first snapshot until every part reported, then passes changes through', async () => {
    let i = 0
    const dns = new DnsResolver({ host: 'payments.internal', port: 80, protocol: 'http' }, 5, async () => (i++ === 0 ? [{ address: '10.0.0.1', family: 4 }] : [{ address: '10.0.0.9', family: 4 }]))
    const control = new ControlResolver('payments', 'http://c', [])
    const merged = new MergedResolver([new StaticResolver([ep('http://127.0.0.1:1')]), dns, control])
    try {
      const f = follow(merged)
      // The static and control parts reported at start(); the DNS part has not yet: nothing yet.
      expect(f.batches).toEqual([])
      const first = await f.next()
      expect(first.map((c) => (c.type === 'insert' ? c.endpoint.url : c.url)).sort()).toEqual(['http://10.0.0.1:80', 'http://127.0.0.1:1'])
      const later = await f.next()
      expect(later).toEqual([{ type: 'insert', endpoint: expect.objectContaining({ url: 'http://10.0.0.9:80' }) }, { type: 'remove', url: 'http://10.0.0.1:80' }])
      expect(merged.describe()).toBe('static list (http://127.0.0.1:1) + dns://payments.internal:80 (every 5ms) + control endpoint http://c (service payments)')
    } finally {
      merged.close()
    }
  })

  it('passes errors of a part through at once', async () => {
    const dns = new DnsResolver({ host: 'x', port: 80, protocol: 'http' }, 60_000, async () => Promise.reject(new Error('SERVFAIL')))
    const merged = new MergedResolver([new StaticResolver([]), dns])
    const f = follow(merged)
    const e = await f.nextError()
    expect(isMeshletError(e, ErrorCodes.DISCOVERY)).toBe(true)
    merged.close()
  })
})

describe('resolverForEndpoints', () => {
  it('is a static list for URLs, DNS for one dns:// name, merged for both', () => {
    expect(resolverForEndpoints('p', ['http://127.0.0.1:1'], 5000)).toBeInstanceOf(StaticResolver)
    expect(resolverForEndpoints('p', ['dns://localhost:8080'], 5000)).toBeInstanceOf(DnsResolver)
    const mixed = resolverForEndpoints('p', ['http://127.0.0.1:1', { url: 'dns://localhost:8080', zone: 'z' }], 5000)
    expect(mixed).toBeInstanceOf(MergedResolver)
    expect(mixed.describe()).toBe('static list (http://127.0.0.1:1) + dns://localhost:8080 (every 5000ms)')
  })

  it('resolves localhost for real, with the zone and revision given', async () => {
    const r = resolverForEndpoints('p', [{ url: 'dns://localhost:8080', zone: 'z1', revision: 'v2' }, 'http://127.0.0.1:1'], 60_000)
    try {
      const f = follow(r)
      const first = await f.next()
      const fromDns = first.filter((c) => c.type === 'insert' && c.endpoint.port === 8080)
      expect(fromDns.length).toBeGreaterThan(0)
      for (const c of fromDns) expect(c).toMatchObject({ endpoint: { zone: 'z1', revision: 'v2' } })
    } finally {
      r.close()
    }
  })

  it('refuses dns:// without a port with MESHLET_ERR_CONFIG_INVALID naming the service', () => {
    let error: unknown
    try {
      resolverForEndpoints('payments', ['dns://payments.internal'], 5000)
    } catch (err) {
      error = err
    }
    expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
    expect((error as Error).message).toContain('services.payments.endpoints: "dns://payments.internal" needs a port')
  })
})
