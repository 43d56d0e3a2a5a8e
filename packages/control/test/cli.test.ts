/** The `meshlet` CLI, compiled, against an endpoint on loopback. */
import { spawn } from 'node:child_process'
import { access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ControlServer } from '../src/index.js'
import { ADMIN, call, issuePolicyYaml, JOIN, removeTempDirs, runCli, startTestControl, tempDir } from './control-harness.js'

let server: ControlServer
let env: Record<string, string>
let dir: string
beforeAll(async () => {
  server = await startTestControl()
  env = { MESHLET_CONTROL: server.url, MESHLET_TOKEN: ADMIN }
  dir = await tempDir()
})
afterAll(async () => {
  await server.close()
  await removeTempDirs()
})

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name)
  await writeFile(p, text)
  return p
}

describe('meshlet apply', () => {
  it('accepts the ServicePolicy of issue 3 as written, then reports it unchanged', async () => {
    const f = await file('payments.yaml', issuePolicyYaml)
    const first = await runCli(['apply', '-f', f], env)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toContain('servicepolicy/payments (namespace default) created')
    expect(first.stdout).toContain('+   timeout: 2000')
    const again = await runCli(['apply', '-f', f], env)
    expect(again.stdout.trim()).toBe('servicepolicy/payments (namespace default) unchanged')
    expect(server.state.get('ServicePolicy', 'default', 'payments')?.spec).toEqual({ service: 'payments', timeout: 2000, retries: { attempts: 3, perTryTimeout: 500 } })
  })

  it('refuses timeout: banana with exit 1 and a message naming spec.timeout; applies nothing', async () => {
    const rv = server.state.resourceVersion
    const f = await file('banana.yaml', issuePolicyYaml.replace('timeout: 2s', 'timeout: banana').replace('name: payments', 'name: bananas'))
    const r = await runCli(['apply', '-f', f], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`${f}: invalid ServicePolicy default/bananas (1 problem):`)
    expect(r.stderr).toContain('- spec.timeout: "banana" is not a duration')
    expect(r.stderr).toContain('[MESHLET_ERR_CONFIG_INVALID]')
    expect(server.state.resourceVersion).toBe(rv)
  })

  it('applies a Trigger and refuses one whose CESQL filter does not parse, naming the field before sending it', async () => {
    const trigger = (cesql: string) => `apiVersion: meshlet.dev/v1
kind: Trigger
metadata: { name: notify-big-orders, namespace: shop }
spec:
  broker: default
  filters: [{ cesql: "${cesql}" }]
  subscriber: { ref: { kind: Service, name: notifications }, uri: /_meshlet/events/notify-big-orders }
  delivery: { retry: 3, backoffPolicy: exponential, backoffDelay: PT0.2S }
`
    const ok = await runCli(['apply', '-f', await file('trigger.yaml', trigger("type = 'shop.order.created' AND amount >= 50"))], env)
    expect(ok.code, ok.stderr).toBe(0)
    expect(server.state.get('Trigger', 'shop', 'notify-big-orders')).toBeDefined()
    const rv = server.state.resourceVersion
    const bad = await runCli(['apply', '-f', await file('bad-trigger.yaml', trigger("type = 'shop.order.created' AND"))], env)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('spec.filters[0].cesql')
    expect(server.state.resourceVersion).toBe(rv)
  })

  it('applies multi-document YAML all or nothing', async () => {
    const good = issuePolicyYaml.replace(/payments/g, 'orders')
    const bad = issuePolicyYaml.replace(/payments/g, 'search').replace('attempts: 3', 'attempts: 30')
    const r = await runCli(['apply', '-f', await file('mixed.yaml', `${good}---\n${bad}`)], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('(document 2): invalid ServicePolicy default/search')
    expect(r.stderr).toContain('spec.retries.attempts: 30 is too large; the maximum is 10')
    expect(server.state.get('ServicePolicy', 'default', 'orders')).toBeUndefined()
    const ok = await runCli(['apply', '-f', await file('two.yaml', `${good}---\n${bad.replace('30', '2')}\n---\n`)], env)
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/orders \(namespace default\) created[\s\S]*search \(namespace default\) created/)
  })

  it('--dry-run shows the diff and changes nothing', async () => {
    const rv = server.state.resourceVersion
    const r = await runCli(['apply', '--dry-run', '-f', await file('dry.yaml', issuePolicyYaml.replace('2s', '5s'))], env)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('servicepolicy/payments (namespace default) configured (dry run)')
    expect(r.stdout).toMatch(/- {3}timeout: 2000\n {4}\+ {3}timeout: 5000/)
    expect(server.state.resourceVersion).toBe(rv)
  })

  it('reads stdin with -f - and puts resources without a namespace in -n', async () => {
    const r = await runCli(['apply', '-f', '-', '-n', 'shop'], env, issuePolicyYaml.replace('namespace: default', 'labels: { team: pay }'))
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('servicepolicy/payments (namespace shop) created')
    expect(server.state.get('ServicePolicy', 'shop', 'payments')?.metadata.labels).toEqual({ team: 'pay' })
  })

  it('reports bad YAML with its line, and documents that are not resources', async () => {
    const r = await runCli(['apply', '-f', await file('bad.yaml', 'kind: ServicePolicy\nspec: { service: [oops\n')], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('not valid YAML')
    expect(r.stderr).toMatch(/line \d+/)
    const list = await runCli(['apply', '-f', await file('list.yaml', '- a\n- b\n')], env)
    expect(list.code).toBe(1)
    expect(list.stderr).toContain('(root): expected a resource')
    const bomb = await runCli(['apply', '-f', await file('bomb.yaml', `a: &a [x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`).join('\n')}\n`)], env)
    expect(bomb.code).toBe(1)
    expect(bomb.stderr).toMatch(/alias|resource/i)
  })

  it('needs the admin token to write', async () => {
    const r = await runCli(['apply', '-f', await file('p2.yaml', issuePolicyYaml), '--token', JOIN], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('[MESHLET_ERR_FORBIDDEN]')
  })

  it('with no token at all, says it needs the admin token (not the join token) before sending anything', async () => {
    const rv = server.state.resourceVersion
    const r = await runCli(['apply', '-f', await file('p3.yaml', issuePolicyYaml)], { MESHLET_CONTROL: server.url, MESHLET_TOKEN: '' })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('apply changes configuration and needs the admin token: pass --token or set MESHLET_TOKEN')
    expect(r.stderr).not.toContain('join token')
    expect(server.state.resourceVersion).toBe(rv)
  })

  it('a file that is not there exits 1 saying so, not 2 with the usage', async () => {
    const r = await runCli(['apply', '-f', join(dir, 'missing.yaml')], env)
    expect(r.code).toBe(1)
    expect(r.stderr.trim()).toBe(`error: cannot read ${join(dir, 'missing.yaml')}: no such file`)
  })

  it('-f /dev/zero stops at the 8 MiB cap while reading (exit 2), not after reading without end', async () => {
    const r = await runCli(['apply', '-f', '/dev/zero'], env)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('/dev/zero is over 8388608 bytes')
  })
})

describe('meshlet control', () => {
  it('on a port in use fails before creating anything in the data directory, and says why', async () => {
    const data = join(await tempDir(), 'fresh')
    const port = new URL(server.url).port
    const r = await runCli(['control', '--port', port, '--data', data], { MESHLET_TOKEN: '', MESHLET_JOIN_TOKEN: '' })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`127.0.0.1:${port} is already in use`)
    expect(r.stdout).not.toContain('token')
    await expect(access(data)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('the bin launcher runs the built CLI (installable before a build: it is committed)', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/meshlet.js', import.meta.url)), 'schema', 'routes', '-o', 'yaml'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let stdout = ''
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
      child.on('exit', (code) => resolve({ code, stdout }))
    })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('title: Route')
  })
})

describe('meshlet get, delete, instances, inspect', () => {
  it('gets a table by default, or JSON and YAML', async () => {
    await runCli(['apply', '-f', await file('p.yaml', issuePolicyYaml)], env)
    const t = await runCli(['get', 'servicepolicies'], env)
    expect(t.code).toBe(0)
    expect(t.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+SERVICE\s+VERSION\s+AGE$/)
    expect(t.stdout).toMatch(/default\s+payments\s+payments\s+\d+/)
    const j = await runCli(['get', 'sp', 'payments', '-o', 'json'], env)
    expect(JSON.parse(j.stdout)).toMatchObject({ kind: 'ServicePolicy', metadata: { name: 'payments' }, spec: { timeout: 2000 } })
    const y = await runCli(['get', 'ServicePolicy', '-A', '-o', 'yaml', '--token', JOIN], env)
    expect(y.stdout).toContain('kind: ServicePolicy')
    expect(y.stdout).toContain('namespace: shop')
  })

  it('exits 1 with the endpoint\'s message for unknown kinds and missing resources', async () => {
    const kind = await runCli(['get', 'gadgets'], env)
    expect(kind.code).toBe(1)
    expect(kind.stderr).toContain('unknown kind "gadgets"')
    const missing = await runCli(['get', 'sp', 'nothing'], env)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('ServicePolicy default/nothing does not exist [MESHLET_ERR_NOT_FOUND]')
    expect((await runCli(['delete', 'sp', 'nothing'], env)).code).toBe(1)
  })

  it('deletes', async () => {
    await runCli(['apply', '-f', await file('gone.yaml', issuePolicyYaml.replace(/name: payments/, 'name: gone'))], env)
    const r = await runCli(['delete', 'servicepolicy', 'gone'], env)
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('servicepolicy/gone (namespace default) deleted')
    expect(server.state.get('ServicePolicy', 'default', 'gone')).toBeUndefined()
  })

  it('lists instances and inspects a service with its policy and reported state', async () => {
    const a = await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'payments', revision: 'v1', zone: 'eu-1a', port: 3001 } })
    await call(server.url, 'POST', '/v1/instances', { token: JOIN, body: { service: 'payments', revision: 'v2', port: 3002, protocols: ['http', 'grpc'] } })
    await call(server.url, 'POST', `/v1/instances/${a.json.id}/heartbeat`, { token: JOIN, body: { report: { inflight: 4, ejected: ['127.0.0.1:9'] } } })
    const list = await runCli(['instances', 'payments'], { ...env, MESHLET_TOKEN: JOIN })
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/payments\s+default\s+v1\s+eu-1a\s+127\.0\.0\.1:3001\s+http\s/)
    expect(list.stdout).toMatch(/v2\s+-\s+127\.0\.0\.1:3002\s+http,grpc/)
    const inspect = await runCli(['inspect', 'payments'], env)
    expect(inspect.code).toBe(0)
    expect(inspect.stdout).toContain('policies: servicepolicy/payments')
    expect(inspect.stdout).toContain('effective: timeout 2s, retries 3 (per try 500ms')
    expect(inspect.stdout).toContain('instances (2):')
    expect(inspect.stdout).toContain(`reported by ${a.json.id}`)
    expect(inspect.stdout).toContain('inflight: 4')
    const json = JSON.parse((await runCli(['inspect', 'payments', '-o', 'json'], env)).stdout)
    expect(json).toMatchObject({ service: 'payments', effectivePolicy: { timeout: 2000 }, instances: [{}, {}] })
  })
})

describe('command line', () => {
  it('exits 2 on usage mistakes, with the usage', async () => {
    for (const args of [[], ['frobnicate'], ['get', '--bogus'], ['get', 'sp', '-o', 'xml'], ['apply'], ['get'], ['get', 'sp', 'a', 'b'], ['get', 'sp', '-n', 'x', '-A'], ['control', '--port', 'http']]) {
      const r = await runCli(args, env)
      expect(r.code, args.join(' ')).toBe(2)
    }
    const r = await runCli(['apply'], env)
    expect(r.stderr).toContain('usage: meshlet apply -f FILE')
    const help = await runCli(['--help'], env)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('meshlet apply -f FILE')
  })

  it('prints the JSON Schema of the resources without an endpoint', async () => {
    const all = await runCli(['schema'], {})
    expect(all.code).toBe(0)
    expect(JSON.parse(all.stdout).oneOf[0].properties.spec.properties.timeout).toBeDefined()
    const one = await runCli(['schema', 'servicepolicies', '-o', 'yaml'], {})
    expect(one.stdout).toContain('title: ServicePolicy')
    expect((await runCli(['schema', 'routes', '-o', 'yaml'], {})).stdout).toContain('title: Route')
    expect((await runCli(['schema', 'gadgets'], {})).code).toBe(1)
  })

  it('exits 1 when the endpoint cannot be reached, naming it', async () => {
    const r = await runCli(['get', 'sp', '--control', 'http://127.0.0.1:9'], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('cannot reach the control endpoint at http://127.0.0.1:9')
  })
})
