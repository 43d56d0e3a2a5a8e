import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { Destination } from '../destination.js'
import { parseEndpointUrl } from '../discovery/resolver.js'
import { StaticResolver } from '../discovery/resolver-static.js'
import { ConfigError, ErrorCodes, isMeshletError } from '../errors.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { ConfigApplier, withoutService } from './config-applier.js'
import { resolvePolicy, validateMeshOptions } from './mesh-options.js'

function setup() {
  const options = validateMeshOptions({ service: 'web', defaults: { timeout: '5s' }, services: { payments: { endpoints: ['http://127.0.0.1:1'], retries: { attempts: 1 } } } })
  const metrics = new MeshMetrics()
  const payments = new Destination('payments', resolvePolicy(options.defaults, options.services!.payments), new StaticResolver([parseEndpointUrl('http://127.0.0.1:1')]), undefined, metrics)
  const destinations = new Map([['payments', payments]])
  const applier = new ConfigApplier({ mesh: 'web', options, lookup: (n) => destinations.get(n), known: () => [...destinations.keys()], metrics, now: () => Date.UTC(2026, 0, 2, 3, 4, 5) })
  return { applier, payments }
}

function thrown(fn: () => void): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('did not throw')
}

describe('ConfigApplier', () => {
  it('layers a policy update over the service options and the defaults, and counts the version', () => {
    const { applier, payments } = setup()
    expect(applier.version).toBe(1)
    applier.applyPolicy('payments', { timeout: '2s' }, 'test')
    expect(payments.policy.timeout).toBe(2000)
    expect(payments.policy.retries && payments.policy.retries.attempts).toBe(1) // from services.payments
    expect(applier.version).toBe(2)
    // Several updates: later over earlier, field by field; the options stay under them.
    applier.applyPolicy('payments', [{ timeout: '3s', retries: { attempts: 4 } }, { timeout: '1s' }], 'two policies')
    expect(payments.policy.timeout).toBe(1000)
    expect(payments.policy.retries && payments.policy.retries.attempts).toBe(4)
    // No update: back to the options.
    applier.applyPolicy('payments', [], 'none')
    expect(payments.policy.timeout).toBe(5000)
    expect(applier.version).toBe(4)
  })

  it('refuses an invalid update whole: the policy stays, lastRejected, the channel and the error name the field', () => {
    const { applier, payments } = setup()
    const rejected: unknown[] = []
    const onRejected = (m: unknown) => rejected.push(m)
    subscribe('meshlet:config:rejected', onRejected)
    let error: unknown
    try {
      error = thrown(() => applier.applyPolicy('payments', [{ timeout: '1s' }, { timeout: 'soon' }], 'ServicePolicy default/p'))
    } finally {
      unsubscribe('meshlet:config:rejected', onRejected)
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
    expect((error as ConfigError).issues).toEqual([{ path: '[1].timeout', message: expect.stringContaining('"soon" is not a duration') }])
    expect(payments.policy.timeout).toBe(5000)
    expect(applier.version).toBe(1)
    expect(applier.lastRejected).toMatchObject({ service: 'payments', source: 'ServicePolicy default/p', at: '2026-01-02T03:04:05.000Z', issues: [{ path: '[1].timeout' }] })
    expect(applier.lastRejected!.message).toContain('policy update for "payments" from ServicePolicy default/p')
    expect(rejected).toEqual([applier.lastRejected])
  })

  it('replaces routes with the given Route specs, and clears them with none', () => {
    const { applier, payments } = setup()
    applier.applyRoutes('payments', [{ service: 'payments', rules: [{ timeout: '1s', split: [{ revision: 'v1', weight: 100 }] }] }], 'Route default/payments')
    expect(payments.routes).toBeDefined()
    applier.applyRoutes('payments', [], 'deleted')
    expect(payments.routes).toBeUndefined()
    expect(applier.version).toBe(3)
  })

  it('refuses routes with a bad rule, keeping the previous ones', () => {
    const { applier, payments } = setup()
    applier.applyRoutes('payments', [{ service: 'payments', rules: [{ split: [{ revision: 'v1', weight: 100 }] }] }], 'first')
    const before = payments.routes
    const error = thrown(() => applier.applyRoutes('payments', [{ service: 'payments', rules: [{ split: [{ revision: 'v1', weight: -1 }] }] }], 'second'))
    expect(isMeshletError(error, ErrorCodes.CONFIG_INVALID)).toBe(true)
    expect((error as ConfigError).issues[0]!.path).toMatch(/^rules\[0\]\.split\[0\]\.weight/)
    expect(payments.routes).toBe(before)
  })

  it('answers MESHLET_ERR_UNKNOWN_SERVICE for a service without a destination, listing the known ones', () => {
    const { applier } = setup()
    const error = thrown(() => applier.applyPolicy('stock', {}, 'x'))
    expect(isMeshletError(error, ErrorCodes.UNKNOWN_SERVICE)).toBe(true)
    expect((error as Error).message).toBe('Mesh "web" has no destination "stock" to apply a policy to; known: payments.')
  })

  it('applies the control endpoint\'s state to a new destination without throwing, recording a refusal', () => {
    const { applier, payments } = setup()
    applier.applyInitial('payments', { specs: [{ service: 'payments', rules: [{ split: [{ revision: 'v1', weight: 100 }] }] }], source: 'Route r' }, { specs: [{ service: 'payments', timeout: 'never' }], source: 'ServicePolicy p' })
    expect(payments.routes).toBeDefined()
    expect(payments.policy.timeout).toBe(5000)
    expect(applier.lastRejected?.source).toBe('ServicePolicy p')
  })

  it('withoutService drops the spec\'s service, which is not a policy field', () => {
    expect(withoutService({ service: 'payments', timeout: '1s' })).toEqual({ timeout: '1s' })
  })
})
