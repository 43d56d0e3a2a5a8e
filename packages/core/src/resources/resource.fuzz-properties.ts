/** Properties of resource validation (every built-in kind): a normalized resource, or issues that name fields. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { validPolicy } from '../config/mesh-options.fuzz-properties.js'
import { ConfigError, ErrorCodes, type ConfigIssue } from '../errors.js'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { hostileRouteSpec, validRouteSpec } from '../routing/route.fuzz-properties.js'
import { builtinResourceRegistry } from './kinds.js'
import { API_VERSION } from './resource.js'

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
const metadata = fc.record(
  {
    name: label,
    namespace: label,
    resourceVersion: fc.oneof(fc.nat(), fc.nat().map(String)),
    labels: fc.dictionary(fc.stringMatching(/^([a-z]{1,5}\.[a-z]{2,3}\/)?[A-Za-z0-9]{1,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 4 }),
  },
  { requiredKeys: ['name'] },
)

const validResource = fc.oneof(
  fc.record({ apiVersion: fc.constant(API_VERSION), kind: fc.constant('Route'), metadata, spec: validRouteSpec }),
  fc.record({ apiVersion: fc.constant(API_VERSION), kind: fc.constant('ServicePolicy'), metadata, spec: validPolicy.chain((p) => label.map((service) => ({ service, ...p }))) }),
)

const hostileResource = fc.oneof(
  fc.anything(),
  fc.record({ apiVersion: fc.oneof(fc.constant(API_VERSION), fc.anything()), kind: fc.oneof(fc.constantFrom('Route', 'ServicePolicy', 'route', 'sp', 'Nope'), fc.anything()), metadata: fc.oneof(metadata, fc.anything()), spec: fc.anything() }, { requiredKeys: [] }),
  fc.record({ apiVersion: fc.constant(API_VERSION), kind: fc.constant('Route'), metadata, spec: hostileRouteSpec }),
  fc.record({ apiVersion: fc.constant(API_VERSION), kind: fc.constant('ServicePolicy'), metadata, spec: fc.dictionary(fc.constantFrom('service', 'timeout', 'retries', 'balancer', 'breaker', 'outlier', '__proto__', 'x'), fc.anything()) }),
  fc.tuple(validResource, fc.dictionary(fc.string({ maxLength: 10 }), fc.anything(), { minKeys: 1, maxKeys: 2 })).map(([r, extra]) => ({ ...r, metadata: { ...r.metadata, ...extra } })),
)

const TOP = new Set(['(root)', 'apiVersion', 'kind', 'metadata', 'spec'])

export const resourceSuite: FuzzSuite = {
  name: 'resource',
  regressions: new URL('./resource.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'registry.check returns a resource or pushes issues each naming a path under the envelope, for any value; validate throws only ConfigError',
      make: () => {
        const registry = builtinResourceRegistry()
        return {
          property: fc.property(fc.oneof(hostileResource, validResource), (value) => {
            const issues: ConfigIssue[] = []
            const out = registry.check(value, issues)
            if (out === undefined) {
              assert.ok(issues.length > 0)
              for (const i of issues) assert.ok(TOP.has(i.path.split(/[.[]/)[0]!) || Object.keys(value as object).includes(i.path), `issue at ${JSON.stringify(i.path)}`)
            } else assert.deepEqual(issues, [])
            try {
              registry.validate(value)
            } catch (err) {
              assert.ok(err instanceof ConfigError && err.code === ErrorCodes.CONFIG_INVALID, `threw ${String(err)}`)
            }
          }),
        }
      },
    },
    {
      name: 'a valid resource validates to a normalized one (namespace set, durations in ms) that validates to itself',
      make: () => {
        const registry = builtinResourceRegistry()
        return {
          property: fc.property(validResource, (value) => {
            const once = registry.validate(value)
            assert.equal(typeof once.metadata.namespace, 'string')
            assert.deepEqual(registry.validate(JSON.parse(JSON.stringify(once))), once)
          }),
        }
      },
    },
  ],
}
