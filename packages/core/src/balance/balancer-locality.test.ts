import { describe, expect, it } from 'vitest'
import { DEFAULT_POLICY } from '../config/mesh-options.js'
import { newCallContext } from '../client/call-context.js'
import { MeshMetrics } from '../telemetry/metrics.js'
import { Balancer } from './balancer.js'

function balancer(): Balancer {
  const b = new Balancer('payments', DEFAULT_POLICY.balancer, false, 'zone-a', new MeshMetrics())
  b.applyChanges([
    { type: 'insert', endpoint: { url: 'http://10.0.0.1:80', protocol: 'http', host: '10.0.0.1', port: 80, zone: 'zone-a' } },
    { type: 'insert', endpoint: { url: 'http://10.0.0.2:80', protocol: 'http', host: '10.0.0.2', port: 80, zone: 'zone-b' } },
    { type: 'insert', endpoint: { url: 'http://10.0.0.3:80', protocol: 'http', host: '10.0.0.3', port: 80, zone: 'zone-b' } },
  ])
  return b
}

describe('locality', () => {
  it('keeps calls in the local zone while it is not overloaded, and spills over when it is', async () => {
    const b = balancer()
    const zones = (n: number) => {
      const seen = new Map<string, number>()
      for (let i = 0; i < n; i++) {
        const z = b.pick(newCallContext('payments', Infinity, undefined, true)).address.zone!
        seen.set(z, (seen.get(z) ?? 0) + 1)
      }
      return seen
    }
    expect(zones(200)).toEqual(new Map([['zone-a', 200]]))
    const local = b.pick(newCallContext('payments', Infinity, undefined, true))
    b.reportLoad(local, 0.95) // the only local endpoint says it is saturated
    const spilled = zones(200)
    expect(spilled.get('zone-b')).toBeGreaterThan(0)
    b.reportLoad(local, 0.1)
    expect(zones(200)).toEqual(new Map([['zone-a', 200]]))
    await b.close()
  })
})
