import { describe, expect, it } from 'vitest'
import { ConfigError } from '../errors.js'
import { validateMeshOptions } from '../config/mesh-options.js'
import { resolveAdmission } from './admission-options.js'

function issues(admission: unknown): { path: string; message: string }[] {
  try {
    validateMeshOptions({ service: 'orders', admission })
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues]
    throw err
  }
  return []
}

describe('admission options', () => {
  it('accepts the documented shape, durations as text', () => {
    expect(
      issues({
        concurrency: { limit: 8, queue: 16, queueTimeout: '2s' },
        rateLimit: { rps: 100, burst: 200, perCaller: { rps: 10, burst: 20 }, callerKey: () => 'k' },
        shedding: { eventLoopDelay: '80ms', utilization: 0.9, interval: '50ms' },
        priorityPaths: ['/healthz', '/metrics'],
        adaptive: { minLimit: 2, maxLimit: 64, tolerance: 2, smoothing: 0.3, window: '200ms', eventLoopDelay: '40ms' },
      }),
    ).toEqual([])
  })

  it('refuses bad fields, each with its path', () => {
    const found = issues({
      concurrency: { limit: 0, queue: -1, queueTimeout: 'soon', extra: 1 },
      rateLimit: { rps: 'fast', perCaller: { burst: 2 }, callerKey: 'x-user' },
      shedding: { utilization: 1.5, priorityPaths: ['/healthz'] },
      priorityPaths: ['healthz'],
      adaptive: { tolerance: 0.5 },
    }).map((i) => i.path)
    expect(found).toEqual(
      expect.arrayContaining([
        'admission.concurrency.limit',
        'admission.concurrency.queue',
        'admission.concurrency.queueTimeout',
        'admission.concurrency.extra',
        'admission.rateLimit.rps',
        'admission.rateLimit.perCaller.rps',
        'admission.rateLimit.callerKey',
        'admission.shedding.utilization',
        'admission.shedding.priorityPaths',
        'admission.priorityPaths[0]',
        'admission.adaptive.tolerance',
      ]),
    )
  })

  it('refuses limits that contradict each other', () => {
    expect(issues({ rateLimit: {} })).toEqual([{ path: 'admission.rateLimit', message: expect.stringContaining('sets no limit') }])
    expect(issues({ rateLimit: { rps: 5, callerKey: () => 'k' } })).toEqual([{ path: 'admission.rateLimit.callerKey', message: 'has no effect without perCaller' }])
    expect(issues({ adaptive: { minLimit: 10, maxLimit: 5 } })[0]).toMatchObject({ path: 'admission.adaptive.minLimit' })
    expect(issues({ concurrency: { limit: 500 }, adaptive: { maxLimit: 100 } })[0]).toMatchObject({ path: 'admission.concurrency.limit' })
  })

  it('fills in defaults', () => {
    const o = validateMeshOptions({ service: 'orders', admission: { concurrency: { limit: 4 }, rateLimit: { rps: 2.5 }, shedding: {}, adaptive: {} } })
    const st = resolveAdmission(o.admission!)
    expect(st.concurrency).toEqual({ limit: 4, queue: 4, queueTimeout: 1000 })
    expect(st.rateLimit).toEqual({ rps: 2.5, burst: 3 })
    expect(st.shedding).toEqual({ eventLoopDelay: 100, utilization: Infinity, interval: 100 })
    expect(st.priorityPaths).toEqual(['/healthz', '/readyz'])
    expect(st.adaptive).toMatchObject({ initialLimit: 4, minLimit: 1, maxLimit: 1000 })
    // Adaptive alone starts from its own initial limit, with a queue of the same size.
    expect(resolveAdmission(validateMeshOptions({ service: 'a', admission: { adaptive: {} } }).admission!).concurrency).toEqual({ limit: 20, queue: 20, queueTimeout: 1000 })
  })
})
