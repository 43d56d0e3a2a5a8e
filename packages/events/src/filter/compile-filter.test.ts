import { CloudEvent } from 'cloudevents'
import { isMeshletError, type ConfigError } from '@meshlet/core'
import { describe, expect, it } from 'vitest'
import type { FilterSpec } from '../resources/event-specs.js'
import { compileFilter } from './compile-filter.js'

const order = new CloudEvent({ id: '1', source: 'https://shop.example/orders', type: 'com.shop.order.created', subject: 'order-42', region: 'eu', priority: 3, express: true })
const refund = new CloudEvent({ id: '2', source: 'https://shop.example/refunds', type: 'com.shop.refund.created' })

function refusal(spec: unknown): ConfigError {
  try {
    compileFilter(spec as FilterSpec)
  } catch (e) {
    if (isMeshletError(e)) return e as ConfigError
    throw e
  }
  throw new Error('expected compileFilter to refuse the spec')
}

describe('compileFilter', () => {
  it('matches everything when there is neither filter nor filters', () => {
    const f = compileFilter({})
    expect(f.uses).toBe('none')
    expect([f(order), f(refund)]).toEqual([true, true])
  })

  it('legacy attributes: exact match on each, an empty value meaning present', () => {
    const f = compileFilter({ filter: { attributes: { type: 'com.shop.order.created', region: '' } } })
    expect(f.uses).toBe('filter')
    expect(f(order)).toBe(true)
    expect(f(refund)).toBe(false)
    expect(compileFilter({ filter: { attributes: { subject: '' } } })(refund)).toBe(false)
    // Extensions compare by their string form.
    expect(compileFilter({ filter: { attributes: { priority: '3', express: 'true' } } })(order)).toBe(true)
  })

  it('a non-empty filters overrides filter; an empty one does not', () => {
    const filter = { attributes: { type: 'com.shop.refund.created' } }
    expect(compileFilter({ filter, filters: [{ prefix: { type: 'com.shop.order.' } }] })(order)).toBe(true)
    expect(compileFilter({ filter, filters: [] })(order)).toBe(false)
  })

  it('ANDs the entries; exact, prefix and suffix need the attribute', () => {
    const f = compileFilter({ filters: [{ prefix: { type: 'com.shop.' } }, { suffix: { type: '.created' } }, { exact: { region: 'eu' } }] })
    expect(f(order)).toBe(true)
    expect(f(refund)).toBe(false)
    expect(compileFilter({ filters: [{ suffix: { region: '' } }] })(refund)).toBe(false)
  })

  it('combines with all, any and not', () => {
    const f = compileFilter({ filters: [{ any: [{ exact: { type: 'com.shop.refund.created' } }, { all: [{ prefix: { source: 'https://shop.example/' } }, { not: { exact: { region: 'us' } } }] }] }] })
    expect(f(order)).toBe(true)
    expect(f(refund)).toBe(true)
    expect(f(new CloudEvent({ id: '3', source: 'https://shop.example/orders', type: 'x', region: 'us' }))).toBe(false)
  })

  it('cesql: matches on true without error, and an expression that errors does not match', () => {
    const f = compileFilter({ filters: [{ cesql: "type LIKE 'com.shop.%.created' AND priority >= 3" }] })
    expect(f(order)).toBe(true)
    expect(f(refund)).toBe(false)
    const explained = f.explain(refund)
    expect(explained.matched).toBe(false)
    expect(explained.cesql).toEqual([{ path: 'filters[0].cesql', expression: "type LIKE 'com.shop.%.created' AND priority >= 3", result: expect.objectContaining({ value: false, error: 'missingAttribute' }) }])
  })

  it('explains every CESQL expression, also those the match did not need', () => {
    const f = compileFilter({ filters: [{ any: [{ cesql: 'TRUE' }, { cesql: '1 / 0 = 0' }] }] })
    const e = f.explain(order)
    expect(e.matched).toBe(true)
    expect(e.cesql.map((c) => [c.path, c.result.error])).toEqual([['filters[0].any[0].cesql', undefined], ['filters[0].any[1].cesql', 'math']])
  })

  it('refuses an entry with two dialects or none, naming the entry', () => {
    const e = refusal({ filters: [{ exact: { type: 'a' } }, { exact: { type: 'a' }, suffix: { type: 'b' } }, {}] })
    expect(e.code).toBe('MESHLET_ERR_CONFIG_INVALID')
    expect(e.issues).toEqual([
      { path: 'filters[1]', message: 'has 2 dialects (exact, suffix); an entry takes exactly one: split it into separate entries (entries are ANDed)' },
      { path: 'filters[2]', message: 'needs exactly one dialect (exact, prefix, suffix, all, any, not, cesql), got none' },
    ])
  })

  it('refuses unknown dialects, several attributes in exact, bad names and empty any', () => {
    const e = refusal({ filters: [{ regex: 'x' }, { exact: { type: 'a', source: 'b' } }, { prefix: { Type: 'a' } }, { any: [] }] })
    expect(e.issues.map((i) => i.path)).toEqual(['filters[0].regex', 'filters[0]', 'filters[1].exact', 'filters[2].prefix.Type', 'filters[3].any'])
    expect(e.issues[2]!.message).toContain('exact takes exactly one attribute, got 2 (type, source)')
  })

  it('refuses a CESQL expression that does not parse, with its column', () => {
    const e = refusal({ filters: [{ all: [{ cesql: "type = 'a' AND" }] }] })
    expect(e.issues).toEqual([{ path: 'filters[0].all[0].cesql', message: 'is not a valid CESQL expression: expected a value (a literal, an attribute, a function call or "("), got the end of the expression at column 15' }])
    expect(refusal({ filters: [{ cesql: 'HASH(id)' }] }).issues[0]!.message).toContain('calls HASH with 1 argument at column 1')
  })

  it('refuses filters nested too deep', () => {
    let f: unknown = { exact: { type: 'a' } }
    for (let i = 0; i < 20; i++) f = { not: f }
    expect(refusal({ filters: [f] }).issues[0]!.message).toContain('nest more than 16 levels')
  })
})
