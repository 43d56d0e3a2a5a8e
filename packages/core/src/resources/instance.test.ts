import { describe, expect, it } from 'vitest'
import type { ConfigIssue } from '../errors.js'
import { instanceRegistrationSchema, MAX_ADVERTISED_TRIGGERS } from './instance.js'

function check(value: unknown): { value: unknown; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = []
  return { value: instanceRegistrationSchema.check(value, '', issues), issues }
}

const trigger = { name: 'notify', broker: 'default', path: '/_meshlet/events/notify', filters: [{ cesql: "type = 'order.created'" }], delivery: { retry: 3 } }

describe('instance registration: advertised triggers', () => {
  it('accepts triggers as given (their fields are for @meshlet/events to check)', () => {
    const r = check({ service: 'orders', port: 3000, triggers: [trigger] })
    expect(r.issues).toEqual([])
    expect((r.value as { triggers: unknown[] }).triggers).toEqual([trigger])
  })

  it('stays valid without triggers', () => {
    expect(check({ service: 'orders', port: 3000 }).issues).toEqual([])
  })

  it('names the field that is missing or not a string', () => {
    const { issues } = check({ service: 'orders', port: 3000, triggers: [{ name: 'a', path: 7 }] })
    expect(issues.map((i) => i.path)).toEqual(['triggers[0].broker', 'triggers[0].path'])
  })

  it(`refuses more than ${MAX_ADVERTISED_TRIGGERS} triggers, non-objects, non-JSON values, deep nesting and oversized entries`, () => {
    const many = Array.from({ length: MAX_ADVERTISED_TRIGGERS + 1 }, (_, i) => ({ ...trigger, name: `t${i}` }))
    expect(check({ service: 'orders', port: 3000, triggers: many }).issues[0]?.message).toMatch(/at most 32/)
    expect(check({ service: 'orders', port: 3000, triggers: ['notify'] }).issues[0]?.message).toMatch(/expected an object/)
    expect(check({ service: 'orders', port: 3000, triggers: [{ ...trigger, delivery: { retry: Infinity } }] }).issues[0]?.message).toMatch(/plain JSON/)
    let deep: unknown = 'x'
    for (let i = 0; i < 20; i++) deep = { deep }
    expect(check({ service: 'orders', port: 3000, triggers: [{ ...trigger, deep }] }).issues[0]?.message).toMatch(/nested at most 16 deep/)
    expect(check({ service: 'orders', port: 3000, triggers: [{ ...trigger, big: 'x'.repeat(20_000) }] }).issues[0]?.message).toMatch(/over 16384 characters/)
  })
})
