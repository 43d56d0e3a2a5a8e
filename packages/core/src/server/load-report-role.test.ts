import { describe, expect, it } from 'vitest'
import { FakeCall } from '../../test/fixtures/fake-inbound-call.js'
import { loadReportRole } from './load-report-role.js'
import type { CallResumer } from './server-role.js'

describe('load-report role', () => {
  it("hands the source's current report to the transport and never refuses", () => {
    let report = '0.10; inflight=1'
    const role = loadReportRole({ loadReport: () => report })
    const a = new FakeCall()
    expect(role.arrive(a, {} as CallResumer)).toBeUndefined()
    report = '0.90; inflight=7; queue=2'
    const b = new FakeCall()
    role.arrive(b, {} as CallResumer)
    expect(a.loads).toEqual(['0.10; inflight=1'])
    expect(b.loads).toEqual(['0.90; inflight=7; queue=2'])
  })
})
