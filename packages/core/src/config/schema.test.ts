import { describe, expect, it } from 'vitest'
import type { ConfigIssue } from '../errors.js'
import { meshOptionsSchema } from './mesh-options.js'
import * as s from './schema.js'

type JsonObject = Record<string, unknown>

describe('jsonSchema() of meshOptionsSchema', () => {
  const schema = meshOptionsSchema.jsonSchema()
  const props = schema.properties as Record<string, JsonObject>

  it('is a closed object that requires service', () => {
    expect(schema.type).toBe('object')
    expect(schema.additionalProperties).toBe(false)
    expect(schema.required).toEqual(['service'])
    expect(Object.keys(props)).toEqual(['service', 'namespace', 'revision', 'zone', 'services', 'defaults', 'drain', 'shutdownSignals', 'dnsRefresh', 'control', 'token', 'cacheDir', 'snapshotMaxAge', 'heartbeatInterval', 'leaseTtl', 'destinationIdleTimeout', 'admission'])
  })

  it('survives a JSON round trip unchanged (no RegExp, Infinity or functions)', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema)
  })

  it('describes names with a compilable pattern', () => {
    expect(props.service).toMatchObject({ type: 'string', pattern: expect.any(String), description: expect.stringContaining('name') })
    const name = new RegExp(props.service!.pattern as string)
    expect(name.test('payments')).toBe(true)
    expect(name.test('Payments')).toBe(false)
  })

  it('describes services as a map of closed service objects that require endpoints', () => {
    const services = props.services!
    expect(services.type).toBe('object')
    const service = services.additionalProperties as JsonObject
    expect(service).toMatchObject({ type: 'object', additionalProperties: false, required: ['endpoints'] })
    const sp = service.properties as Record<string, JsonObject>
    expect(sp.endpoints).toMatchObject({ type: 'array', minItems: 1, maxItems: 10_000 })
    expect(sp.timeout!.oneOf).toEqual([{ const: false }, expect.objectContaining({ oneOf: expect.any(Array) })])
  })

  it('lists enums and integer bounds', () => {
    expect(props.shutdownSignals!.oneOf).toContainEqual(expect.objectContaining({ type: 'array', items: { enum: ['SIGTERM', 'SIGINT', 'SIGHUP'] } }))
    const retries = (((props.defaults!.properties as Record<string, JsonObject>).retries!.oneOf as JsonObject[])[1]!.properties as Record<string, JsonObject>)
    expect(retries.attempts).toMatchObject({ type: 'integer', minimum: 0, maximum: 10 })
  })

  it('gives durations a string pattern and numeric bounds in milliseconds', () => {
    const dns = props.dnsRefresh!
    const [text, ms] = dns.oneOf as JsonObject[]
    expect(ms).toEqual({ type: 'number', minimum: 100, maximum: 86_400_000 })
    const pattern = new RegExp(text!.pattern as string)
    expect(pattern.test('1m30s')).toBe(true)
    expect(pattern.test('2x')).toBe(false)
  })
})

describe('schema building blocks', () => {
  it('object() reports a missing required field and unknown fields by path', () => {
    const schema = s.object({ a: s.number(), b: s.string() }, { required: ['a'] })
    const issues: ConfigIssue[] = []
    expect(schema.check({ b: 'x', c: 1 }, 'root', issues)).toBeUndefined()
    expect(issues).toEqual([
      { path: 'root.c', message: 'is not a known field; known fields: a, b' },
      { path: 'root.a', message: 'is required' },
    ])
  })

  it('array() names each item by index', () => {
    const issues: ConfigIssue[] = []
    expect(s.array(s.number({ integer: true })).check([1, 'two', 3.5], 'xs', issues)).toBeUndefined()
    expect(issues.map((i) => i.path)).toEqual(['xs[1]', 'xs[2]'])
  })

  it('returns the normalized value and pushes nothing when valid', () => {
    const issues: ConfigIssue[] = []
    expect(s.object({ t: s.duration() }).check({ t: '1m30s' }, '', issues)).toEqual({ t: 90_000 })
    expect(issues).toEqual([])
  })
})
