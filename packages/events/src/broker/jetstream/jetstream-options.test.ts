import { ConfigError } from '@meshlet/core'
import { describe, expect, it } from 'vitest'
import { type JetStreamBackendOptions, resolveJetStreamOptions } from './jetstream-options.js'

function issuesOf(options: JetStreamBackendOptions): string[] {
  try {
    resolveJetStreamOptions(options)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('MESHLET_ERR_CONFIG_INVALID')
    return (err as ConfigError).issues.map((i) => i.path)
  }
  return []
}

describe('resolveJetStreamOptions', () => {
  it('fills the defaults', () => {
    expect(resolveJetStreamOptions({ servers: 'nats://127.0.0.1:4222' })).toMatchObject({
      servers: ['nats://127.0.0.1:4222'],
      streamPrefix: 'meshlet',
      replicas: 1,
      maxAgeMs: 7 * 24 * 60 * 60 * 1000,
      duplicateWindowMs: 120_000,
      connectionName: 'meshlet-events',
    })
  })

  it('names every bad field at once', () => {
    expect(issuesOf({ servers: [], streamPrefix: 'a_b', replicas: 0, maxAge: -1, duplicateWindow: 0 })).toEqual([
      'servers',
      'streamPrefix',
      'replicas',
      'maxAge',
      'duplicateWindow',
    ])
  })

  it('refuses half credentials, mixed credentials and a window longer than max age', () => {
    expect(issuesOf({ servers: 'x', user: 'u' })).toEqual(['pass'])
    expect(issuesOf({ servers: 'x', user: 'u', pass: 'p', token: 't' })).toEqual(['token'])
    expect(issuesOf({ servers: 'x', maxAge: 1000, duplicateWindow: 2000 })).toEqual(['duplicateWindow'])
    expect(issuesOf({ servers: ['x', ''] })).toEqual(['servers[1]'])
  })
})
