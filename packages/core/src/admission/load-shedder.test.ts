import { afterEach, describe, expect, it } from 'vitest'
import { LoadShedder } from './load-shedder.js'

function busy(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // Deliberately blocks the event loop.
  }
}

/** Resolves after the event loop has turned `n` times through its timers (lets the delay histogram sample). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 11))
}

let shedder: LoadShedder | undefined
afterEach(() => shedder?.close())

describe('LoadShedder', () => {
  it('is not overloaded on an idle loop, and is while the sampler is overdue or after a sample saw a block', async () => {
    shedder = new LoadShedder({ eventLoopDelay: 40, utilization: Infinity, interval: 10_000 })
    shedder.start()
    await turns(2)
    shedder.sample()
    expect(shedder.overloaded).toBe(false)
    // Right after a sample: the block must still be seen by the next one.
    busy(120)
    await turns(2)
    shedder.sample()
    expect(shedder.delay).toBeGreaterThan(40)
    expect(shedder.overloaded).toBe(true)
    // Calm again within two samples.
    await turns(2)
    shedder.sample()
    await turns(2)
    shedder.sample()
    expect(shedder.overloaded).toBe(false)
  })

  it('counts a sampler overdue by more than the threshold as overloaded before it runs', () => {
    shedder = new LoadShedder({ eventLoopDelay: 20, utilization: Infinity, interval: 30 })
    shedder.start()
    expect(shedder.overloaded).toBe(false)
    busy(80)
    expect(shedder.overloaded).toBe(true)
  })

  it('sheds on event-loop utilization over its threshold', async () => {
    shedder = new LoadShedder({ eventLoopDelay: Infinity, utilization: 0.5, interval: 10_000 })
    shedder.start()
    busy(100)
    shedder.sample()
    expect(shedder.utilization).toBeGreaterThan(0.5)
    expect(shedder.overloaded).toBe(true)
  })

  it('never reports overload when closed, and stops its timers', () => {
    shedder = new LoadShedder({ eventLoopDelay: 1, utilization: Infinity, interval: 10 })
    shedder.start()
    shedder.close()
    busy(30)
    expect(shedder.overloaded).toBe(false)
  })
})
