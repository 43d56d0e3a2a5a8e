import { describe, expect, expectTypeOf, it } from 'vitest'
import { ConfigError, ErrorCodes, isMeshletError } from '../errors.js'
import { DEFAULT_POLICY, resolvePolicy, validateMeshOptions, type MeshOptionsInput } from './mesh-options.js'

/** A complete, valid options object using every field. */
function fullOptions() {
  return {
    service: 'web',
    namespace: 'shop',
    revision: 'v2',
    zone: 'eu-west-1a',
    services: {
      payments: {
        endpoints: ['http://127.0.0.1:3001', { url: 'https://10.0.0.7:8443', zone: 'eu-west-1b', revision: 'v1' }, 'dns://payments.internal:8080'] as unknown[],
        timeout: '2s' as unknown,
        retries: {
          attempts: 3 as unknown,
          perTryTimeout: '500ms',
          backoff: { base: '25ms' as unknown, max: '1s' as unknown },
          budget: { percent: 10, minPerSecond: 5, ttl: '10s' },
        } as Record<string, unknown>,
        balancer: { type: 'round-robin', decay: '5s', failurePenalty: '1s' } as unknown,
        breaker: { errorThreshold: 40, volumeThreshold: 10, window: '10s', resetTimeout: '5s' } as Record<string, unknown>,
        outlier: { consecutiveFailures: 3, interval: '10s', baseEjectionTime: '30s', maxEjectionTime: '5m', maxEjectionPercent: 50 } as Record<string, unknown>,
      } as Record<string, unknown>,
      inventory: { endpoints: ['http://127.0.0.1:3002'], timeout: false, retries: false, breaker: false, outlier: false, balancer: 'least-request' },
    } as Record<string, unknown>,
    defaults: { timeout: '10s', retries: { attempts: 1 }, breaker: { errorThreshold: 25 as unknown } as Record<string, unknown> } as Record<string, unknown>,
    drain: { delay: '1s', timeout: '20s' as unknown },
    shutdownSignals: ['SIGTERM', 'SIGINT'] as unknown,
    dnsRefresh: '5s' as unknown,
  } as Record<string, unknown> & { services: Record<string, Record<string, unknown>> }
}

function configError(options: unknown): ConfigError {
  try {
    validateMeshOptions(options)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  return expect.unreachable('validateMeshOptions accepted invalid options')
}

function issueAt(error: ConfigError, path: string): string {
  const issue = error.issues.find((i) => i.path === path)
  if (issue === undefined) return expect.unreachable(`no issue at ${path}; got ${JSON.stringify(error.issues)}`)
  return issue.message
}

describe('validateMeshOptions: valid options', () => {
  it('accepts a full options object and normalizes durations to milliseconds', () => {
    const o = validateMeshOptions(fullOptions())
    expect(o.service).toBe('web')
    expect(o.namespace).toBe('shop')
    const payments = o.services?.payments
    expect(payments?.timeout).toBe(2000)
    expect(payments?.retries).toEqual({ attempts: 3, perTryTimeout: 500, backoff: { base: 25, max: 1000 }, budget: { percent: 10, minPerSecond: 5, ttl: 10_000 } })
    expect(payments?.balancer).toEqual({ type: 'round-robin', decay: 5000, failurePenalty: 1000 })
    expect(payments?.outlier).toEqual({ consecutiveFailures: 3, interval: 10_000, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 50 })
    expect(payments?.endpoints).toHaveLength(3)
    expect(o.services?.inventory).toEqual({ endpoints: ['http://127.0.0.1:3002'], timeout: false, retries: false, breaker: false, outlier: false, balancer: 'least-request' })
    expect(o.drain).toEqual({ delay: 1000, timeout: 20_000 })
    expect(o.shutdownSignals).toEqual(['SIGTERM', 'SIGINT'])
    expect(o.dnsRefresh).toBe(5000)
  })

  it('accepts the minimal options: a service name', () => {
    expect(validateMeshOptions({ service: 'web' })).toEqual({ service: 'web' })
  })

  it('accepts endpoints on the scheme\'s default port, including dns://name:80', () => {
    const endpoints = ['http://127.0.0.1:80', 'https://10.0.0.1:443', 'dns://payments.internal:80', 'http://[::1]:8080', 'dns://[::1]:80/']
    expect(validateMeshOptions({ service: 'web', services: { payments: { endpoints } } }).services?.payments?.endpoints).toEqual(endpoints)
  })

  it('types durations as text or milliseconds on input, and as milliseconds once validated', () => {
    const input: MeshOptionsInput = {
      service: 'web',
      dnsRefresh: '5s',
      defaults: { timeout: '2s', retries: { backoff: { base: 25, max: '1s' } } },
      services: { payments: { endpoints: ['http://127.0.0.1:1'], timeout: false, breaker: { window: '10s' } } },
    }
    const o = validateMeshOptions(input)
    expectTypeOf(o.dnsRefresh).toEqualTypeOf<number | undefined>()
    expect(o.dnsRefresh).toBe(5000)
    expect(o.defaults?.retries).toEqual({ backoff: { base: 25, max: 1000 } })
  })

  it('accepts shutdownSignals: false', () => {
    expect(validateMeshOptions({ service: 'web', shutdownSignals: false }).shutdownSignals).toBe(false)
  })
})

describe('validateMeshOptions: each invalid option names its field, its value and what is allowed', () => {
  type Case = [path: string, mutate: (o: ReturnType<typeof fullOptions>) => void, fragments: string[]]
  const cases: Case[] = [
    ['services.payments.retries.attempts', (o) => void (o.services.payments!.retries = { attempts: 11 }), ['11 is too large', 'maximum is 10']],
    ['services.payments.retries.attempts', (o) => void (o.services.payments!.retries = { attempts: 1.5 }), ['expected an integer', '1.5']],
    ['services.payments.retries.attempts', (o) => void (o.services.payments!.retries = { attempts: -1 }), ['-1 is too small', 'minimum is 0']],
    ['services.payments.retries.budget.ttl', (o) => void (o.services.payments!.retries = { budget: { ttl: '100ms' } }), ['"100ms"', 'too short', 'minimum is 1s']],
    ['services.payments.retries.budget.percent', (o) => void (o.services.payments!.retries = { budget: { percent: 101 } }), ['101', 'maximum is 100']],
    ['services.payments.endpoints[0]', (o) => void ((o.services.payments!.endpoints as unknown[])[0] = 'ftp://127.0.0.1:21'), ['"ftp://127.0.0.1:21"', 'endpoint URL like']],
    ['services.payments.endpoints[0]', (o) => void ((o.services.payments!.endpoints as unknown[])[0] = 'http://127.0.0.1:3001/charge'), ['"http://127.0.0.1:3001/charge"', 'no path']],
    ['services.payments.endpoints[0]', (o) => void ((o.services.payments!.endpoints as unknown[])[0] = 42), ['expected an object', 'number 42']],
    ['services.payments.endpoints[1].url', (o) => void ((o.services.payments!.endpoints as unknown[])[1] = { url: 'payments' }), ['"payments"', 'endpoint URL like']],
    ['services.payments.endpoints[1].url', (o) => void ((o.services.payments!.endpoints as unknown[])[1] = { zone: 'a' }), ['is required']],
    ['services.payments.endpoints[0]', (o) => void ((o.services.payments!.endpoints as unknown[])[0] = 'http://127.0.0.1:99999'), ['"http://127.0.0.1:99999"', 'not a valid URL', 'port is 0-65535']],
    ['services.payments.endpoints[0]', (o) => void ((o.services.payments!.endpoints as unknown[])[0] = 'http://:3001'), ['"http://:3001"', 'not a valid URL']],
    ['services.payments.endpoints[1].url', (o) => void ((o.services.payments!.endpoints as unknown[])[1] = { url: 'http://[::1:80' }), ['"http://[::1:80"', 'not a valid URL']],
    ['services.payments.endpoints[2]', (o) => void ((o.services.payments!.endpoints as unknown[])[2] = 'dns://payments.internal'), ['"dns://payments.internal"', 'needs a port']],
    ['services.payments.endpoints', (o) => void (o.services.payments!.endpoints = []), ['needs at least 1 item']],
    ['services.payments.endpoints', (o) => void delete o.services.payments!.endpoints, ['is required']],
    ['services.payments.timeout', (o) => void (o.services.payments!.timeout = '0ms'), ['"0ms"', 'too short', 'minimum is 1ms']],
    ['services.payments.timeout', (o) => void (o.services.payments!.timeout = true), ['boolean true', 'not a duration', '"250ms"']],
    ['services.payments.timeout', (o) => void (o.services.payments!.timeout = '2 seconds'), ['"2 seconds"', 'not a duration']],
    ['defaults.breaker.errorThreshold', (o) => void ((o.defaults as Record<string, Record<string, unknown>>).breaker!.errorThreshold = 0), ['0 is too small', 'minimum is 1']],
    ['services.payments.balancer', (o) => void (o.services.payments!.balancer = 'random'), ['"random"', '"p2c-peak-ewma", "round-robin", "least-request"']],
    ['services.payments.balancer.type', (o) => void (o.services.payments!.balancer = { type: 'fastest' }), ['"fastest"', '"round-robin"']],
    ['services.payments.balancer.type', (o) => void (o.services.payments!.balancer = { decay: '1s' }), ['is required']],
    ['services.payments.outlier.maxEjectionPercent', (o) => void ((o.services.payments!.outlier as Record<string, unknown>).maxEjectionPercent = 150), ['150 is too large', 'maximum is 100']],
    ['services.payments.breaker', (o) => void (o.services.payments!.breaker = true), ['expected an object', 'boolean true']],
    ['service', (o) => void (o.service = 'Web_1'), ['"Web_1"', 'DNS label']],
    ['service', (o) => void delete o.service, ['is required']],
    ['service', (o) => void (o.service = 42), ['expected a string', 'number 42']],
    ['namespace', (o) => void (o.namespace = '-shop'), ['"-shop"', 'DNS label']],
    ['services.Payments', (o) => void (o.services.Payments = { endpoints: ['http://127.0.0.1:1'] }), ['"Payments"', 'DNS label']],
    ['drain.timeout', (o) => void ((o.drain as Record<string, unknown>).timeout = 'soon'), ['"soon"', 'not a duration', '"2s"']],
    ['drain.timeout', (o) => void ((o.drain as Record<string, unknown>).timeout = 0), ['number 0', 'too short', 'minimum is 1ms']],
    ['shutdownSignals[0]', (o) => void (o.shutdownSignals = ['SIGKILL']), ['"SIGKILL"', '"SIGTERM", "SIGINT", "SIGHUP"']],
    ['shutdownSignals', (o) => void (o.shutdownSignals = 'SIGTERM'), ['expected a list', '"SIGTERM"']],
    ['dnsRefresh', (o) => void (o.dnsRefresh = '10ms'), ['"10ms"', 'too short', 'minimum is 100ms']],
    ['dnsRefresh', (o) => void (o.dnsRefresh = '2d'), ['"2d"', 'not a duration']],
    ['destinationIdleTimeout', (o) => void (o.destinationIdleTimeout = 'soon'), ['"soon"', 'not a duration']],
    ['destinationIdleTimeout', (o) => void (o.destinationIdleTimeout = -1), ['-1', 'not a duration']],
    ['destinationIdleTimeout', (o) => void (o.destinationIdleTimeout = 500), ['number 500', 'too short', 'minimum is 1s']],
    ['destinationIdleTimeout', (o) => void (o.destinationIdleTimeout = 8 * 24 * 3_600_000), ['too long', 'maximum is']],
    ['destinationIdleTimeout', (o) => void (o.destinationIdleTimeout = true), ['boolean true']],
  ]

  it.each(cases)('%s (case %#)', (path, mutate, fragments) => {
    const o = fullOptions()
    mutate(o)
    const error = configError(o)
    expect(error.code).toBe(ErrorCodes.CONFIG_INVALID)
    expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
    const message = issueAt(error, path)
    for (const f of fragments) expect(message).toContain(f)
    // The thrown message lists the field with its problem.
    expect(error.message).toContain(`  - ${path}: ${message}`)
  })

  it('takes destinationIdleTimeout as a duration or false', () => {
    expect(validateMeshOptions({ service: 'web', destinationIdleTimeout: '10m' }).destinationIdleTimeout).toBe(600_000)
    expect(validateMeshOptions({ service: 'web', destinationIdleTimeout: false }).destinationIdleTimeout).toBe(false)
    expect(validateMeshOptions({ service: 'web' }).destinationIdleTimeout).toBeUndefined()
  })

  it('reports every problem at once, not just the first', () => {
    const o = fullOptions()
    o.service = 'BAD'
    o.dnsRefresh = 'never'
    o.services.payments!.retries = { attempts: 99 }
    const error = configError(o)
    expect(error.issues.map((i) => i.path).sort()).toEqual(['dnsRefresh', 'service', 'services.payments.retries.attempts'])
    expect(error.message).toMatch(/^Invalid mesh options \(3 problems\):/)
  })

  it('suggests the field an unknown key was probably meant to be', () => {
    const error = configError({ service: 'web', Services: {}, services_: 1, services: { payments: { endpoints: ['http://127.0.0.1:1'], Retries: { attempts: 1 } } } })
    expect(issueAt(error, 'Services')).toBe('is not a known field; did you mean "services"?')
    expect(issueAt(error, 'services.payments.Retries')).toContain('did you mean "retries"?')
    // With no near match, the message lists the known fields instead.
    expect(issueAt(error, 'services_')).toContain('known fields: service, namespace, revision, zone, services, defaults, drain, shutdownSignals, dnsRefresh')
  })

  it('refuses a backoff base larger than its max, in a service and in defaults', () => {
    const o = fullOptions()
    o.services.inventory = { endpoints: ['http://127.0.0.1:3002'], retries: { backoff: { base: '500ms', max: '100ms' } } }
    o.defaults = { retries: { backoff: { base: '2s', max: '1s' } } }
    const error = configError(o)
    expect(issueAt(error, 'services.inventory.retries.backoff')).toBe('base (500ms) is larger than max (100ms)')
    expect(issueAt(error, 'defaults.retries.backoff')).toBe('base (2000ms) is larger than max (1000ms)')
    expect(error.issues).toHaveLength(2)
  })

  it('accepts a backoff base equal to its max', () => {
    expect(() => validateMeshOptions({ service: 'web', defaults: { retries: { backoff: { base: '1s', max: 1000 } } } })).not.toThrow()
  })
})

describe('validateMeshOptions: hostile and oversized input', () => {
  const huge = 'a'.repeat(5000)

  it.each([
    ['null', null],
    ['an array', [{ service: 'web' }]],
    ['a string', 'web'],
    ['a number', 42],
    ['undefined', undefined],
  ])('refuses a root that is %s', (_what, root) => {
    const error = configError(root)
    expect(error.issues).toHaveLength(1)
    expect(error.issues[0]!.path).toBe('(root)')
    expect(error.issues[0]!.message).toMatch(/^expected an object, got /)
  })

  it('refuses 5,000-character strings without echoing them', () => {
    const error = configError({
      service: huge,
      zone: huge,
      dnsRefresh: huge,
      services: { payments: { endpoints: [`http://${huge}:1`], timeout: huge } },
    })
    expect(issueAt(error, 'service')).toBe('is 5000 characters long; at most 4096 are allowed')
    expect(issueAt(error, 'zone')).toBe('is 5000 characters long; at most 128 are allowed')
    expect(issueAt(error, 'dnsRefresh')).toContain('a string of 5000 characters is not a duration')
    expect(issueAt(error, 'services.payments.endpoints[0]')).toBe('is 5009 characters long; at most 2048 are allowed')
    expect(issueAt(error, 'services.payments.timeout')).toContain('a string of 5000 characters')
    expect(error.message).not.toContain('a'.repeat(100))
    expect(error.message.length).toBeLessThan(2000)
  })

  it('refuses 20,000 endpoints with one issue, without checking each', () => {
    const endpoints = Array.from({ length: 20_000 }, (_, i) => `http://10.0.${i >> 8}.${i & 255}:80`)
    const t0 = performance.now()
    const error = configError({ service: 'web', services: { payments: { endpoints } } })
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(error.issues).toEqual([{ path: 'services.payments.endpoints', message: 'has 20000 items; at most 10000 are allowed' }])
  })

  it('refuses more than 10,000 services', () => {
    const services = Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`s${i}`, { endpoints: ['http://127.0.0.1:1'] }]))
    const error = configError({ service: 'web', services })
    expect(error.issues).toEqual([{ path: 'services', message: 'has 10001 entries; at most 10000 are allowed' }])
  })

  it('does not let a __proto__ key in services or at the root pollute Object.prototype', () => {
    const input: unknown = JSON.parse('{"service":"web","__proto__":{"polluted":1},"services":{"__proto__":{"endpoints":["http://127.0.0.1:1"],"timeout":"1s"}},"defaults":{"__proto__":{"timeout":"1s"}}}')
    const error = configError(input)
    expect(issueAt(error, 'services.__proto__')).toContain('DNS label')
    expect(issueAt(error, '__proto__')).toContain('is not a known field')
    expect(issueAt(error, 'defaults.__proto__')).toContain('is not a known field')
    const probe = {} as Record<string, unknown>
    expect(probe.polluted).toBeUndefined()
    expect(probe.endpoints).toBeUndefined()
    expect(probe.timeout).toBeUndefined()
    expect(Object.prototype).not.toHaveProperty('endpoints')
  })

  it('keeps a service named like an Object.prototype member as an own entry', () => {
    const o = validateMeshOptions({ service: 'web', services: { constructor: { endpoints: ['http://127.0.0.1:1'] } } })
    expect(Object.hasOwn(o.services!, 'constructor')).toBe(true)
    expect(o.services!.constructor).toEqual({ endpoints: ['http://127.0.0.1:1'] })
    expect({}.constructor).toBe(Object)
  })
})

describe('resolvePolicy', () => {
  it('returns a copy of the defaults when given no layers', () => {
    const p = resolvePolicy()
    expect(p).toEqual(DEFAULT_POLICY)
    expect(p).not.toBe(DEFAULT_POLICY)
    if (p.retries === false) return expect.unreachable()
    p.retries.attempts = 9
    expect((DEFAULT_POLICY.retries as { attempts: number }).attempts).toBe(2)
  })

  it('has the designed defaults', () => {
    expect(DEFAULT_POLICY.timeout).toBe(15_000)
    expect(DEFAULT_POLICY.retries).toMatchObject({ attempts: 2, budgetPercent: 20, budgetMinPerSecond: 10 })
    expect(DEFAULT_POLICY.balancer.type).toBe('p2c-peak-ewma')
    expect(DEFAULT_POLICY.outlier).toMatchObject({ consecutiveFailures: 5, interval: 10_000, baseEjectionTime: 30_000, maxEjectionPercent: 50 })
  })

  it('layers defaults < defaults option < per-service, field by field', () => {
    const o = validateMeshOptions({
      service: 'web',
      defaults: { timeout: '10s', retries: { attempts: 1, budget: { percent: 5 } }, breaker: { errorThreshold: 25 }, balancer: 'round-robin' },
      services: { payments: { endpoints: ['http://127.0.0.1:1'], retries: { attempts: 3, backoff: { max: '1s' } }, breaker: { window: '20s' } } },
    })
    const p = resolvePolicy(o.defaults, o.services!.payments)
    expect(p.timeout).toBe(10_000)
    expect(p.retries).toEqual({ attempts: 3, perTryTimeout: Infinity, backoffBase: 25, backoffMax: 1000, budgetPercent: 5, budgetMinPerSecond: 10, budgetTtl: 10_000 })
    expect(p.breaker).toEqual({ errorThreshold: 25, volumeThreshold: 20, window: 20_000, resetTimeout: 5000 })
    expect(p.balancer).toEqual({ type: 'round-robin', decay: 10_000, failurePenalty: 1000, loadFactor: 1.25 })
    expect(p.outlier).toEqual(DEFAULT_POLICY.outlier)
  })

  it('disables retries, breaker and outlier detection with false', () => {
    const p = resolvePolicy({ retries: false, breaker: false, outlier: false })
    expect(p.retries).toBe(false)
    expect(p.breaker).toBe(false)
    expect(p.outlier).toBe(false)
  })

  it('lets a service re-enable what the defaults option disabled, starting from the built-in defaults', () => {
    const p = resolvePolicy({ retries: false, breaker: false, outlier: false }, { retries: { attempts: 1 }, breaker: { errorThreshold: 10 }, outlier: { consecutiveFailures: 2 } })
    expect(p.retries).toEqual({ ...(DEFAULT_POLICY.retries as object), attempts: 1 })
    expect(p.breaker).toEqual({ ...(DEFAULT_POLICY.breaker as object), errorThreshold: 10 })
    expect(p.outlier).toEqual({ ...(DEFAULT_POLICY.outlier as object), consecutiveFailures: 2 })
  })

  it('lets a service disable what the defaults option configured', () => {
    const p = resolvePolicy({ retries: { attempts: 1 }, timeout: 5000 }, { retries: false, timeout: false })
    expect(p.retries).toBe(false)
    expect(p.timeout).toBe(Infinity)
  })

  it('turns timeout: false into Infinity', () => {
    expect(resolvePolicy({ timeout: false }).timeout).toBe(Infinity)
  })

  it('merges a balancer object over a string type', () => {
    const p = resolvePolicy({ balancer: { type: 'least-request', failurePenalty: 250 } }, { balancer: 'round-robin' })
    expect(p.balancer).toEqual({ type: 'round-robin', decay: 10_000, failurePenalty: 250, loadFactor: 1.25 })
  })
})
