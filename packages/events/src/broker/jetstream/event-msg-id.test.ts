import { isMeshletError } from '@meshlet/core'
import { describe, expect, it } from 'vitest'
import { eventMsgId } from './event-msg-id.js'

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value))
const event = (source: string, id: string, extra: Record<string, unknown> = {}): Uint8Array =>
  bytes({ specversion: '1.0', type: 't', source, id, ...extra })

describe('eventMsgId', () => {
  it('depends on source and id only', () => {
    expect(eventMsgId(event('/orders', '1'), 0)).toBe(eventMsgId(event('/orders', '1', { data: { other: true } }), 0))
    expect(eventMsgId(event('/orders', '1'), 0)).not.toBe(eventMsgId(event('/orders', '2'), 0))
    expect(eventMsgId(event('/orders', '1'), 0)).not.toBe(eventMsgId(event('/orders/', '1'), 0))
  })

  it('does not confuse pairs whose concatenations match', () => {
    expect(eventMsgId(event('a', 'bc'), 0)).not.toBe(eventMsgId(event('ab', 'c'), 0))
  })

  it('is a fixed-length header-safe token, whatever the attributes hold', () => {
    const id = eventMsgId(event('/x\r\nInjected: yes', 'é🎉\u0000'), 0)
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('refuses what is not a CloudEvent in JSON with EVENT_INVALID naming the index', () => {
    for (const bad of [bytes('not json'), bytes('[1]'), bytes('null'), bytes({ id: '1' }), bytes({ source: '/s' }), bytes({ source: '/s', id: 1 }), new Uint8Array([0xff, 0xfe])]) {
      let caught: unknown
      try {
        eventMsgId(bad, 7)
      } catch (err) {
        caught = err
      }
      expect(isMeshletError(caught, 'MESHLET_ERR_EVENT_INVALID')).toBe(true)
      expect((caught as Error).message).toContain('Event 7')
    }
  })
})
