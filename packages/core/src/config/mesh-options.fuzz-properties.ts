/** Properties of `createMesh` options: validated options, or a ConfigError whose issues name the fields. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ConfigError, ErrorCodes } from '../errors.js'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { validRule } from '../routing/route.fuzz-properties.js'
import { validateMeshOptions } from './mesh-options.js'

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
const duration = fc.oneof(fc.integer({ min: 1000, max: 60_000 }), fc.constantFrom('1s', '2s', '1m30s', '10s'))
const endpoint = fc.oneof(
  fc.integer({ min: 1, max: 65_535 }).map((port) => `http://127.0.0.1:${port}`),
  fc.record({ url: fc.constantFrom('https://10.0.0.7:8443', 'http://[::1]:3001', 'dns://payments.internal:8080'), zone: fc.constantFrom('a', 'b'), revision: label }, { requiredKeys: ['url'] }),
)

/** A policy layer the schema accepts (each field as ServicePolicy and `services.<name>` write it). */
export const validPolicy = fc.record(
  {
    timeout: fc.oneof(fc.constant(false), duration),
    retries: fc.oneof(fc.constant(false), fc.record({ attempts: fc.integer({ min: 0, max: 10 }), perTryTimeout: duration, budget: fc.record({ percent: fc.integer({ min: 0, max: 100 }), minPerSecond: fc.nat({ max: 100 }) }, { requiredKeys: [] }) }, { requiredKeys: [] })),
    balancer: fc.oneof(fc.constantFrom('p2c-peak-ewma', 'round-robin', 'least-request', 'ring-hash'), fc.record({ type: fc.constant('ring-hash'), hashHeader: fc.constantFrom('x-user', 'cookie'), loadFactor: fc.double({ min: 1, max: 10, noNaN: true }) })),
    breaker: fc.oneof(fc.constant(false), fc.record({ errorThreshold: fc.integer({ min: 1, max: 100 }), window: duration }, { requiredKeys: [] })),
    outlier: fc.oneof(fc.constant(false), fc.record({ consecutiveFailures: fc.integer({ min: 1, max: 1000 }), maxEjectionPercent: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
)

export const validMeshOptions = fc.record(
  {
    service: label,
    namespace: label,
    zone: fc.string({ maxLength: 20 }),
    services: fc.dictionary(label, fc.record({ endpoints: fc.array(endpoint, { minLength: 1, maxLength: 3 }), routes: fc.array(validRule, { maxLength: 2 }) }, { requiredKeys: ['endpoints'] }).chain((svc) => validPolicy.map((p) => ({ ...p, ...svc }))), { maxKeys: 3 }),
    defaults: validPolicy,
    drain: fc.record({ delay: fc.constantFrom(0, '1s'), timeout: duration }, { requiredKeys: [] }),
    control: fc.constant('http://127.0.0.1:7070'),
    token: fc.stringMatching(/^[A-Za-z0-9._~+/-]{1,40}=*$/),
  },
  { requiredKeys: ['service'] },
)

/** Values no field accepts: each makes the field it replaces (or an item under it) report an issue. */
const junk = fc.constantFrom<unknown>([[]], { 'no such field': 1 }, null, Symbol('x'), -1.5)

/** Paths to every value inside `v`, as the schema names them (`services.a.endpoints[0].url`). */
function leafPaths(v: unknown, path: string, out: string[][]): string[][] {
  if (typeof v !== 'object' || v === null) return out
  for (const [k, child] of Object.entries(v)) {
    const next = [...path.split('\u0001').filter(Boolean), Array.isArray(v) ? `[${k}]` : k]
    out.push(next)
    leafPaths(child, next.join('\u0001'), out)
  }
  return out
}
const shownPath = (segments: string[]) => segments.reduce((p, s) => (s.startsWith('[') ? p + s : p ? `${p}.${s}` : s), '')

function setAt(v: unknown, segments: string[], value: unknown): unknown {
  if (segments.length === 0) return value
  const [head, ...rest] = segments
  const key = head!.startsWith('[') ? Number(head!.slice(1, -1)) : head!
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<string | number, unknown>
  copy[key] = setAt(copy[key], rest, value)
  return copy
}

function validationOf(value: unknown): ConfigError | undefined {
  try {
    validateMeshOptions(value)
    return undefined
  } catch (err) {
    assert.ok(err instanceof ConfigError, `threw ${String(err)}`)
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID)
    return err
  }
}

export const meshOptionsSuite: FuzzSuite = {
  name: 'mesh-options',
  regressions: new URL('./mesh-options.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'validateMeshOptions returns options or throws ConfigError with issues that each name a path, for any value',
      make: () => ({
        property: fc.property(fc.oneof(fc.anything(), fc.record({ service: fc.anything(), services: fc.anything(), defaults: fc.anything(), admission: fc.anything() }, { requiredKeys: [] })), (value) => {
          const err = validationOf(value)
          if (err === undefined) return
          assert.ok(err.issues.length > 0)
          for (const i of err.issues) assert.ok(typeof i.path === 'string' && i.path.length > 0 && i.message.length > 0, JSON.stringify(i))
        }),
      }),
    },
    {
      name: 'generated valid options validate',
      make: () => ({ property: fc.property(validMeshOptions, (value) => assert.equal(validationOf(value)?.issues, undefined)) }),
    },
    {
      name: 'one field of valid options replaced by junk is reported at that field (or under it)',
      make: () => ({
        property: fc.property(validMeshOptions, fc.nat(), junk, (value, pick, bad) => {
          const paths = leafPaths(value, '', [])
          fc.pre(paths.length > 0)
          const segments = paths[pick % paths.length]!
          const err = validationOf(setAt(value, segments, bad))
          const at = shownPath(segments)
          assert.ok(err !== undefined, `junk at ${at} was accepted`)
          assert.ok(err.issues.some((i) => i.path === at || i.path.startsWith(`${at}.`) || i.path.startsWith(`${at}[`)), `${at}: ${JSON.stringify(err.issues)}`)
        }),
      }),
    },
    {
      name: 'a token with a control character or a space (it travels in the Authorization header) is refused at token',
      make: () => ({
        property: fc.property(fc.stringMatching(/^[A-Za-z0-9]{0,10}$/), fc.oneof(fc.integer({ min: 0, max: 0x20 }), fc.constant(0x7f)), fc.stringMatching(/^[A-Za-z0-9]{0,10}$/), (a, c, b) => {
          const err = validationOf({ service: 'a', control: 'http://127.0.0.1:7070', token: `${a}${String.fromCharCode(c)}${b}` })
          assert.ok(err?.issues.some((i) => i.path === 'token'), JSON.stringify(err?.issues))
        }),
      }),
    },
  ],
}
