/** `meshlet get triggers` and `meshlet get brokers` against a running endpoint, through the compiled CLI. */
import { afterAll, describe, expect, it } from 'vitest'
import { ADMIN, JOIN, removeTempDirs, runCli, startTestControl } from './control-harness.js'
import { admin, event, publish, registerSubscriber, TestSubscriber, trigger, untilStatus } from './broker-harness.js'

const closers: { close(): Promise<void> }[] = []
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()))
  await removeTempDirs()
})

describe('meshlet get triggers / brokers', () => {
  it('lists resource and advertised triggers with broker, subscriber, readiness and reason, lag and counters; -o json for scripts', async () => {
    const c = await startTestControl()
    closers.push(c)
    const sub = await TestSubscriber.start()
    closers.unshift(sub)
    await registerSubscriber(c.url, 'billing', sub, { triggers: [{ name: 'bill-paid', broker: 'default', path: '/_meshlet/events/bill-paid' }] })
    await admin(c.url).put(trigger('to-ghost', { subscriber: { ref: { kind: 'Service', name: 'ghost' } } }) as never)
    await untilStatus(c.url, 'bill-paid', (s) => s.ready === true)
    await publish(c.url, event('e1'))
    await untilStatus(c.url, 'bill-paid', (s) => s.counters.delivered === 1)
    await untilStatus(c.url, 'to-ghost', (s) => s.reason !== undefined)

    const table = await runCli(['get', 'triggers', '--control', c.url, '--token', JOIN])
    expect(table.code).toBe(0)
    const lines = table.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+BROKER\s+SOURCE\s+SUBSCRIBER\s+READY\s+LAG\s+DELIVERED\s+RETRIED\s+DEAD-LETTERED\s+FAILED\s+REASON$/)
    expect(lines.find((l) => l.includes('bill-paid'))).toMatch(/default\s+bill-paid\s+default\s+advertised by billing\s+http:\/\/billing\/_meshlet\/events\/bill-paid\s+True\s+0\s+1\s+0\s+0\s+0/)
    expect(lines.find((l) => l.includes('to-ghost'))).toMatch(/to-ghost\s+default\s+resource\s+http:\/\/ghost\/\s+False\s+-\s+0.*no live instances of service ghost/)

    const json = await runCli(['get', 'triggers', 'bill-paid', '-o', 'json', '--control', c.url, '--token', JOIN])
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'bill-paid', source: 'advertised', ready: true, lag: 0, counters: { delivered: 1 } })

    const brokers = await runCli(['get', 'brokers', '--control', c.url, '--token', ADMIN])
    expect(brokers.code).toBe(0)
    expect(brokers.stdout).toMatch(/default\s+default\s+default\s+embedded\s+1\s+2\s+1\s+0/)

    const missing = await runCli(['get', 'triggers', 'nope', '--control', c.url, '--token', JOIN])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('trigger default/nope does not exist')
  })
})
