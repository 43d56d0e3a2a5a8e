import { describe, expect, it } from 'vitest'
import { isMeshletError, type ConfigError } from '../errors.js'
import { resolvePolicy } from '../config/mesh-options.js'
import { builtinResourceRegistry } from './kinds.js'
import { defineKind, ResourceRegistry } from './resource.js'
import * as s from '../config/schema.js'

const issuePolicy = {
  apiVersion: 'meshlet.dev/v1',
  kind: 'ServicePolicy',
  metadata: { name: 'payments', namespace: 'default' },
  spec: { service: 'payments', timeout: '2s', retries: { attempts: 3, perTryTimeout: '500ms' } },
}

function issuesOf(value: unknown): { path: string; message: string }[] {
  try {
    builtinResourceRegistry().validate(value)
  } catch (err) {
    expect(isMeshletError(err, 'MESHLET_ERR_CONFIG_INVALID')).toBe(true)
    return [...(err as ConfigError).issues]
  }
  throw new Error('expected the resource to be refused')
}

describe('resource validation', () => {
  it('accepts the ServicePolicy of issue 3 and normalizes durations', () => {
    const r = builtinResourceRegistry().validate(issuePolicy)
    expect(r).toEqual({ ...issuePolicy, spec: { service: 'payments', timeout: 2000, retries: { attempts: 3, perTryTimeout: 500 } } })
    const p = resolvePolicy(r.spec as never)
    expect(p.timeout).toBe(2000)
    expect(p.retries && p.retries.attempts).toBe(3)
  })

  it('refuses timeout: banana naming spec.timeout', () => {
    const issues = issuesOf({ ...issuePolicy, spec: { ...issuePolicy.spec, timeout: 'banana' } })
    expect(issues).toEqual([{ path: 'spec.timeout', message: expect.stringContaining('"banana" is not a duration') }])
  })

  it('defaults the namespace and accepts a string resourceVersion', () => {
    const r = builtinResourceRegistry().validate({ ...issuePolicy, metadata: { name: 'payments', resourceVersion: '12' } })
    expect(r.metadata).toEqual({ name: 'payments', namespace: 'default', resourceVersion: 12 })
  })

  it('names every problem: envelope, metadata and spec', () => {
    const issues = issuesOf({ apiVersion: 'v1', kind: 'ServicePolicy', metadata: { name: '../etc' }, spec: { service: 'x', retries: { attemps: 1 } }, status: {} })
    expect(issues.map((i) => i.path).sort()).toEqual(['apiVersion', 'metadata.name', 'spec.retries.attemps', 'status'])
    expect(issues.find((i) => i.path === 'spec.retries.attemps')?.message).toContain('known fields: attempts')
  })

  it('refuses unknown kinds, suggesting the right spelling', () => {
    expect(issuesOf({ ...issuePolicy, kind: 'servicepolicy' })).toEqual([{ path: 'kind', message: expect.stringContaining('did you mean "ServicePolicy"') }])
    expect(issuesOf({ ...issuePolicy, kind: 'Gadget' })[0]?.message).toContain('known kinds: ServicePolicy, Route')
  })

  it('checks across fields', () => {
    expect(issuesOf({ ...issuePolicy, spec: { service: 'p', retries: { backoff: { base: '1s', max: '10ms' } } } })).toEqual([{ path: 'spec.retries.backoff', message: expect.stringContaining('larger than max') }])
  })

  it('refuses non-objects', () => {
    expect(issuesOf('kind: ServicePolicy')[0]?.path).toBe('(root)')
    expect(issuesOf(null)[0]?.path).toBe('(root)')
  })
})

describe('ResourceRegistry', () => {
  it('looks kinds up by name, plural and alias', () => {
    const r = builtinResourceRegistry()
    for (const n of ['ServicePolicy', 'servicepolicies', 'SP', 'servicepolicy']) expect(r.lookup(n)?.kind).toBe('ServicePolicy')
    for (const n of ['Route', 'routes', 'rt']) expect(r.lookup(n)?.kind).toBe('Route')
    expect(r.lookup('gadgets')).toBeUndefined()
  })

  it('registers further kinds through the same machinery, refusing clashes', () => {
    const r = builtinResourceRegistry()
    const route = defineKind({ kind: 'Gadget', plural: 'gadgets', aliases: ['gd'], description: 'test', spec: s.object({ service: s.string() }, { required: ['service'] }) })
    r.register(route)
    expect(r.validate({ apiVersion: 'meshlet.dev/v1', kind: 'Gadget', metadata: { name: 'a' }, spec: { service: 'x' } }).kind).toBe('Gadget')
    expect(() => r.register({ ...route, kind: 'Other', plural: 'others', aliases: ['sp'] })).toThrow(/already taken/)
    expect(() => new ResourceRegistry().register({ ...route, kind: 'Watch', plural: 'watches', aliases: [] })).toThrow(/already taken/)
  })

  it('exports JSON Schema per kind and for any resource', () => {
    const r = builtinResourceRegistry()
    const schema = r.jsonSchema() as { oneOf: { properties: { kind: unknown; spec: { properties: Record<string, unknown>; required: string[] } } }[] }
    expect(schema.oneOf).toHaveLength(2)
    expect(schema.oneOf[1]!.properties.kind).toEqual({ const: 'Route' })
    expect(schema.oneOf[1]!.properties.spec.required).toEqual(['service', 'rules'])
    expect(schema.oneOf[0]!.properties.kind).toEqual({ const: 'ServicePolicy' })
    expect(Object.keys(schema.oneOf[0]!.properties.spec.properties)).toEqual(['service', 'timeout', 'retries', 'balancer', 'breaker', 'outlier'])
    expect(schema.oneOf[0]!.properties.spec.required).toEqual(['service'])
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema)
  })
})
