import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ConcurrencyLimiter, type QueueExit, type QueueWaiter } from './concurrency-limiter.js'

const NOW = 1_700_000_000_000

beforeEach(() => {
  vi.useFakeTimers({ now: NOW })
})
afterEach(() => {
  vi.useRealTimers()
})

function waiter(log: string[], name: string): QueueWaiter & { granted: boolean; expired: QueueExit | undefined } {
  const w = {
    granted: false,
    expired: undefined as QueueExit | undefined,
    grant(waited: number) {
      w.granted = true
      log.push(`${name}:grant@${waited}`)
    },
    expire(why: QueueExit, waited: number) {
      w.expired = why
      log.push(`${name}:${why}@${waited}`)
    },
  }
  return w
}

describe('ConcurrencyLimiter', () => {
  it('hands out at most `limit` permits, then queues, then refuses when the queue is full', () => {
    const l = new ConcurrencyLimiter(2, 1, 1000)
    expect(l.tryAcquire()).toBe(true)
    expect(l.tryAcquire()).toBe(true)
    expect(l.tryAcquire()).toBe(false)
    const log: string[] = []
    expect(l.enqueue(Infinity, waiter(log, 'a'))).toBeDefined()
    expect(l.enqueue(Infinity, waiter(log, 'b'))).toBeUndefined()
    expect([l.inflight, l.queued]).toEqual([2, 1])
  })

  it('releases the queue strictly in arrival order, one permit per release', () => {
    const l = new ConcurrencyLimiter(1, 10, 10_000)
    const log: string[] = []
    l.tryAcquire()
    for (const n of ['a', 'b', 'c']) l.enqueue(Infinity, waiter(log, n))
    vi.advanceTimersByTime(5)
    l.release()
    expect(log).toEqual(['a:grant@5'])
    l.release()
    l.release()
    expect(log).toEqual(['a:grant@5', 'b:grant@5', 'c:grant@5'])
    expect([l.inflight, l.queued]).toEqual([1, 0])
  })

  it('never lets a newcomer pass a waiting request, even when a permit is free', async () => {
    const l = new ConcurrencyLimiter(1, 10, 10_000)
    const log: string[] = []
    l.tryAcquire()
    l.enqueue(Infinity, waiter(log, 'a'))
    l.release()
    // The permit went to "a"; a newcomer finds none free.
    expect(l.tryAcquire()).toBe(false)
    expect(log).toEqual(['a:grant@0'])
    await Promise.resolve()
  })

  it('expires a waiting request after the queue timeout, without a permit', () => {
    const l = new ConcurrencyLimiter(1, 10, 200)
    const log: string[] = []
    l.tryAcquire()
    const a = waiter(log, 'a')
    l.enqueue(Infinity, a)
    vi.advanceTimersByTime(199)
    expect(a.expired).toBeUndefined()
    vi.advanceTimersByTime(1)
    expect(log).toEqual(['a:queue_timeout@200'])
    expect([l.inflight, l.queued]).toEqual([1, 0])
    l.release()
    expect(l.inflight).toBe(0)
  })

  it('expires a waiting request at its own deadline when that comes first, reporting "deadline"', () => {
    const l = new ConcurrencyLimiter(1, 10, 1000)
    const log: string[] = []
    l.tryAcquire()
    l.enqueue(NOW + 50, waiter(log, 'a'))
    l.enqueue(NOW + 5000, waiter(log, 'b'))
    vi.advanceTimersByTime(50)
    expect(log).toEqual(['a:deadline@50'])
    vi.advanceTimersByTime(950)
    expect(log).toEqual(['a:deadline@50', 'b:queue_timeout@1000'])
  })

  it('skips cancelled requests and lets the next one in', () => {
    const l = new ConcurrencyLimiter(1, 2, 1000)
    const log: string[] = []
    l.tryAcquire()
    const a = l.enqueue(Infinity, waiter(log, 'a'))!
    l.enqueue(Infinity, waiter(log, 'b'))
    l.cancel(a)
    expect(l.queued).toBe(1)
    // The cancelled place is free for another request.
    expect(l.enqueue(Infinity, waiter(log, 'c'))).toBeDefined()
    l.release()
    expect(log).toEqual(['b:grant@0'])
    vi.advanceTimersByTime(2000)
    expect(log).toEqual(['b:grant@0', 'c:queue_timeout@1000'])
  })

  it('grants a waiting request on the next microtask when a permit is free but the queue was not empty', async () => {
    const l = new ConcurrencyLimiter(1, 2, 1000)
    const log: string[] = []
    l.tryAcquire()
    const a = l.enqueue(Infinity, waiter(log, 'a'))!
    l.release() // goes to "a"
    l.cancel(a) // no-op: already granted
    expect(l.inflight).toBe(1)
    l.release()
    expect(l.inflight).toBe(0)
    const b = waiter(log, 'b')
    // An adapter may enqueue after tryAcquire refused because someone waited; that someone left.
    l.enqueue(Infinity, b)
    expect(b.granted).toBe(false)
    await Promise.resolve()
    expect(b.granted).toBe(true)
  })

  it('lets more in at once when the limit rises, and none until enough leave when it falls', () => {
    const l = new ConcurrencyLimiter(1, 10, 10_000)
    const log: string[] = []
    l.tryAcquire()
    for (const n of ['a', 'b', 'c']) l.enqueue(Infinity, waiter(log, n))
    l.setLimit(3)
    expect(log).toEqual(['a:grant@0', 'b:grant@0'])
    l.setLimit(1)
    l.release()
    l.release()
    expect(log).toHaveLength(2)
    l.release()
    expect(log).toEqual(['a:grant@0', 'b:grant@0', 'c:grant@0'])
  })

  it('drains: every waiting request expires as draining and no timer is left', () => {
    const l = new ConcurrencyLimiter(1, 10, 10_000)
    const log: string[] = []
    l.tryAcquire()
    l.enqueue(Infinity, waiter(log, 'a'))
    l.enqueue(Infinity, waiter(log, 'b'))
    l.drain()
    expect(log).toEqual(['a:draining@0', 'b:draining@0'])
    expect(vi.getTimerCount()).toBe(0)
    expect(l.queued).toBe(0)
  })

  it('never exceeds the limit under random arrivals, departures, timeouts and cancels', () => {
    const l = new ConcurrencyLimiter(4, 8, 100)
    let running = 0
    let max = 0
    let seed = 42
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    const entries: ReturnType<ConcurrencyLimiter['enqueue']>[] = []
    for (let step = 0; step < 5000; step++) {
      const r = rnd()
      if (r < 0.45) {
        if (l.tryAcquire()) running++
        else
          entries.push(
            l.enqueue(Date.now() + Math.floor(rnd() * 300), {
              grant: () => void (running++, (max = Math.max(max, running))),
              expire: () => {},
            }),
          )
      } else if (r < 0.8 && running > 0) {
        running--
        l.release()
      } else if (r < 0.9) {
        const e = entries[Math.floor(rnd() * entries.length)]
        if (e !== undefined) l.cancel(e)
      } else vi.advanceTimersByTime(Math.floor(rnd() * 40))
      max = Math.max(max, running)
      expect(l.inflight).toBe(running)
      expect(l.queued).toBeLessThanOrEqual(8)
    }
    expect(max).toBe(4)
  })
})
