import { describe, expect, it } from 'vitest'
import { resolvePolicy } from './config/mesh-options.js'
import { Destination } from './destination.js'
import { DestinationRegistry, type DynamicDestination } from './destination-registry.js'
import { ControlResolver } from './discovery/resolver-control.js'
import { parseEndpointUrl } from './discovery/resolver.js'
import { StaticResolver } from './discovery/resolver-static.js'
import { MeshMetrics } from './telemetry/metrics.js'

const metrics = new MeshMetrics()
const ep = (port: number) => parseEndpointUrl(`http://127.0.0.1:${port}`)

function staticDestination(name: string): Destination {
  return new Destination(name, resolvePolicy(), new StaticResolver([ep(1)]), undefined, metrics)
}

/** A registry over a hand-moved clock, creating destinations for the names in `known`. */
function setup(idleTimeout: number, known = ['payments', 'stock']) {
  const clock = { now: 1_000_000 }
  const created: DynamicDestination[] = []
  const registry = new DestinationRegistry({
    idleTimeout,
    now: () => clock.now,
    create: (name) => {
      if (!known.includes(name)) return undefined
      const resolver = new ControlResolver(name, 'http://control:7070', [ep(2)])
      const made = { destination: new Destination(name, resolvePolicy(), resolver, undefined, metrics), resolver }
      created.push(made)
      return made
    },
  })
  return { registry, clock, created }
}

describe('DestinationRegistry', () => {
  it('creates a destination for a name the control endpoint knows on first use, once', () => {
    const { registry, created } = setup(60_000)
    expect(registry.get('nope')).toBeUndefined()
    const d = registry.get('payments')
    expect(d?.name).toBe('payments')
    expect(registry.get('payments')).toBe(d)
    expect(created).toHaveLength(1)
    expect(registry.isStatic('payments')).toBe(false)
    expect(registry.controlResolver('payments')).toBe(created[0]!.resolver)
    void registry.closeAll()
  })

  it('runs init once the destination is registered, so it can look itself up by name', () => {
    let seen: Destination | undefined
    const registry = new DestinationRegistry({
      create: (name) => {
        const resolver = new ControlResolver(name, 'http://c', [])
        return { destination: new Destination(name, resolvePolicy(), resolver, undefined, metrics), resolver, init: () => (seen = registry.peek(name)) }
      },
    })
    const d = registry.get('payments')
    expect(seen).toBe(d)
    void registry.closeAll()
  })

  it('peek neither creates nor counts as a use', () => {
    const { registry, clock } = setup(10_000)
    expect(registry.peek('payments')).toBeUndefined()
    const d = registry.get('payments')!
    clock.now += 9_000
    expect(registry.peek('payments')).toBe(d)
    clock.now += 1_000
    expect(registry.evictIdle()).toEqual(['payments'])
  })

  it('evicts a dynamic destination unused for idleTimeout, closing it, and makes it afresh on next use', async () => {
    const { registry, clock } = setup(10_000)
    const first = registry.get('payments')!
    await first.ready
    clock.now += 9_999
    expect(registry.evictIdle()).toEqual([])
    registry.get('payments') // a use resets the idle time
    clock.now += 9_999
    expect(registry.evictIdle()).toEqual([])
    clock.now += 1
    expect(registry.evictIdle()).toEqual(['payments'])
    expect(registry.peek('payments')).toBeUndefined()
    expect(registry.names()).toEqual([])
    const second = registry.get('payments')
    expect(second).toBeDefined()
    expect(second).not.toBe(first)
    await registry.closeAll()
  })

  it('never evicts a statically configured destination', () => {
    const { registry, clock } = setup(1_000)
    const s = staticDestination('inventory')
    registry.addStatic('inventory', s)
    registry.get('payments')
    clock.now += 10 * 24 * 3_600_000
    expect(registry.evictIdle()).toEqual(['payments'])
    expect(registry.peek('inventory')).toBe(s)
    expect(registry.isStatic('inventory')).toBe(true)
    void registry.closeAll()
  })

  it('keeps an idle destination while a call is in flight on one of its endpoints', async () => {
    const { registry, clock } = setup(1_000)
    const d = registry.get('payments')!
    await d.ready
    const endpoint = d.balancer.pick(d.newContext(true))
    endpoint.inflight++
    clock.now += 5_000
    expect(registry.evictIdle()).toEqual([])
    endpoint.inflight--
    expect(registry.evictIdle()).toEqual(['payments'])
  })

  it('with idleTimeout Infinity (the default) never evicts', () => {
    const { registry, clock } = setup(Infinity)
    registry.get('payments')
    clock.now += 365 * 24 * 3_600_000
    expect(registry.evictIdle()).toEqual([])
    void registry.closeAll()
  })

  it('creates nothing once closeAll() began, and closes every destination', async () => {
    const { registry, created } = setup(60_000)
    registry.addStatic('inventory', staticDestination('inventory'))
    registry.get('payments')
    await registry.closeAll()
    expect(registry.get('stock')).toBeUndefined()
    expect(created).toHaveLength(1)
    // Its ControlResolver was closed with it: later endpoint sets reach no balancer.
    const before = created[0]!.destination.balancer.snapshot().map((e) => e.url)
    created[0]!.resolver.update([ep(3)])
    expect(created[0]!.destination.balancer.snapshot().map((e) => e.url)).toEqual(before)
    expect(before).not.toContain('http://127.0.0.1:3')
  })
})
