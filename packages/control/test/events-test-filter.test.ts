/** `meshlet events test-filter`, the compiled CLI in a child process: offline, no endpoint. */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTempDirs, runCli, tempDir } from './control-harness.js'

const trigger = `apiVersion: meshlet.dev/v1
kind: Trigger
metadata: { name: notify-on-order, namespace: shop }
spec:
  broker: default
  filters:
    - prefix: { type: com.shop.order. }
    - cesql: "region = 'eu' AND INT(priority) >= 2"
  subscriber: { ref: { name: notify } }
`
const event = (extra: Record<string, unknown>) => JSON.stringify({ specversion: '1.0', id: '1', source: 'https://shop.example/orders', type: 'com.shop.order.created', ...extra })

let dir: string
const files: Record<string, string> = {}
beforeAll(async () => {
  dir = await tempDir()
  const write = async (name: string, text: string) => {
    files[name] = join(dir, name)
    await writeFile(files[name]!, text)
  }
  await write('trigger.yaml', trigger)
  await write('trigger.json', JSON.stringify({ apiVersion: 'meshlet.dev/v1', kind: 'Trigger', metadata: { name: 't' }, spec: { broker: 'default', filter: { attributes: { region: '' } }, subscriber: { uri: 'https://hooks.example/x' } } }))
  await write('eu.json', event({ region: 'eu', priority: '3' }))
  await write('us.json', event({ region: 'us', priority: '3' }))
  await write('no-region.json', event({ priority: '3' }))
  await write('bad-cesql.yaml', trigger.replace("INT(priority) >= 2", 'INT(priority) >='))
  await write('policy.yaml', 'apiVersion: meshlet.dev/v1\nkind: ServicePolicy\nmetadata: { name: p }\nspec: { service: p }\n')
  await write('not-an-event.json', JSON.stringify({ specversion: '1.0', id: '1', type: 'x' }))
})
afterAll(removeTempDirs)

describe('meshlet events test-filter', () => {
  it('prints match and exits 0', async () => {
    const r = await runCli(['events', 'test-filter', '-f', files['trigger.yaml']!, files['eu.json']!])
    expect(r).toEqual({ code: 0, stdout: 'match\nfilters[1].cesql: true\n', stderr: '' })
  })

  it('prints no match and exits 1, with the CESQL evaluation error', async () => {
    const us = await runCli(['events', 'test-filter', '-f', files['trigger.yaml']!, files['us.json']!])
    expect(us).toEqual({ code: 1, stdout: 'no match\nfilters[1].cesql: false\n', stderr: '' })
    const missing = await runCli(['events', 'test-filter', '-f', files['trigger.yaml']!, files['no-region.json']!])
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('no match\nfilters[1].cesql: false (missingAttribute: the event has no attribute "region", column 1)\n')
  })

  it('reads a JSON Trigger with a legacy filter, and the event from stdin', async () => {
    const r = await runCli(['events', 'test-filter', '-f', files['trigger.json']!, '-'], {}, event({ region: 'x' }))
    expect(r).toEqual({ code: 0, stdout: 'match\n', stderr: '' })
  })

  it('reports as JSON with -o json', async () => {
    const r = await runCli(['events', 'test-filter', '-o', 'json', '-f', files['trigger.yaml']!, files['no-region.json']!])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout)).toEqual({ matched: false, uses: 'filters', cesql: [{ path: 'filters[1].cesql', expression: "region = 'eu' AND INT(priority) >= 2", value: false, errors: [{ kind: 'missingAttribute', message: 'the event has no attribute "region"', position: 0 }] }] })
  })

  it('refuses a Trigger whose CESQL does not parse, naming the entry and column, exit 2', async () => {
    const r = await runCli(['events', 'test-filter', '-f', files['bad-cesql.yaml']!, files['eu.json']!])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`${files['bad-cesql.yaml']}: invalid Trigger (1 problem):\n  - spec.filters[1].cesql: is not a valid CESQL expression: expected a value`)
    expect(r.stderr).toContain('got the end of the expression at column 35')
  })

  it('says clearly what is wrong with the inputs, exit 2', async () => {
    const policy = await runCli(['events', 'test-filter', '-f', files['policy.yaml']!, files['eu.json']!])
    expect(policy).toMatchObject({ code: 2, stderr: `error: ${files['policy.yaml']} is a ServicePolicy; test-filter needs a Trigger (apiVersion: meshlet.dev/v1, kind: Trigger)\n` })
    const bad = await runCli(['events', 'test-filter', '-f', files['trigger.yaml']!, files['not-an-event.json']!])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(`error: ${files['not-an-event.json']} is not a valid CloudEvent in JSON format: `)
    expect(bad.stderr).toContain('source')
    const gone = await runCli(['events', 'test-filter', '-f', join(dir, 'nope.yaml'), files['eu.json']!])
    expect(gone).toMatchObject({ code: 2, stderr: `error: cannot read ${join(dir, 'nope.yaml')}: no such file\n` })
  })

  it('exits 2 with the usage for a wrong command line', async () => {
    for (const args of [['events'], ['events', 'test-filter', files['eu.json']!], ['events', 'test-filter', '-f', files['trigger.yaml']!], ['events', 'lint']]) {
      const r = await runCli(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain('usage: meshlet events test-filter -f TRIGGER EVENT')
    }
  })
})
