import { isMeshletError } from '@meshlet/core'
import { describe, expect, it } from 'vitest'
import { brokerStreamNames, encodeNameToken, isValidStreamPrefix, triggerDurableName } from './jetstream-names.js'

describe('JetStream names', () => {
  it('keeps DNS labels as they are', () => {
    expect(brokerStreamNames('meshlet', { namespace: 'default', name: 'orders-v2' })).toEqual({
      stream: 'meshlet_default_orders-v2',
      subject: 'meshlet.default.orders-v2',
    })
    expect(triggerDurableName('ship-order')).toBe('ship-order')
  })

  it('escapes every character JetStream forbids, and the separator', () => {
    for (const hostile of ['a.b', 'a*', 'a>', 'a b', 'a/b', 'a\\b', 'a_b', 'a\tb', 'Upper', 'é', '🎉']) {
      const token = encodeNameToken(hostile)
      expect(token).toMatch(/^[a-z0-9=-]+$/)
    }
    expect(encodeNameToken('a.b')).toBe('a=2eb')
    expect(encodeNameToken('é')).toBe('=c3=a9')
  })

  it('never maps two different brokers to one stream', () => {
    const a = brokerStreamNames('meshlet', { namespace: 'a_b', name: 'c' })
    const b = brokerStreamNames('meshlet', { namespace: 'a', name: 'b_c' })
    expect(a.stream).not.toBe(b.stream)
    expect(a.subject).not.toBe(b.subject)
    expect(encodeNameToken('=2e')).not.toBe(encodeNameToken('.'))
  })

  it('rejects empty and overlong names with BAD_REQUEST', () => {
    const codeOf = (f: () => unknown): unknown => {
      try {
        f()
      } catch (err) {
        return isMeshletError(err) ? err.code : err
      }
      return undefined
    }
    expect(codeOf(() => brokerStreamNames('meshlet', { namespace: '', name: 'b' }))).toBe('MESHLET_ERR_BAD_REQUEST')
    expect(codeOf(() => triggerDurableName(''))).toBe('MESHLET_ERR_BAD_REQUEST')
    expect(codeOf(() => triggerDurableName('.'.repeat(100)))).toBe('MESHLET_ERR_BAD_REQUEST')
  })

  it('takes prefixes of letters, digits and dashes only', () => {
    expect(isValidStreamPrefix('meshlet')).toBe(true)
    expect(isValidStreamPrefix('Mesh-1')).toBe(true)
    for (const bad of ['', 'a_b', 'a.b', 'a b', 'x'.repeat(65)]) expect(isValidStreamPrefix(bad)).toBe(false)
  })
})
