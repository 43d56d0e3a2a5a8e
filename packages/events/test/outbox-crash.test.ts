/**
 * The outbox survives a crash: a publisher process spools events while the broker is down and is
 * SIGKILLed with them still spooled; a new process on the same outbox directory, once the broker is
 * back, forwards them all. The processes run the compiled package (built first, incrementally).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Inbox, JOIN, meshOf, serveReceivers, startTestControl, tempDir, Teardown, triggerReady } from './client-harness.js'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const N = 200

/** A publisher process: spools `count` events (the broker is down), says so, and waits to be killed; or (count 0) flushes and exits. */
function publisherScript(control: string, outbox: string, count: number): string {
  return `
    import { createMesh } from '@meshlet/core'
    import { events } from './dist/index.js'
    const mesh = await createMesh({ service: 'orders', namespace: 'shop', control: ${JSON.stringify(control)}, token: ${JSON.stringify(JOIN)}, shutdownSignals: false })
    const ev = events(mesh, { outbox: ${JSON.stringify(outbox)} })
    if (${count} > 0) {
      for (let i = 0; i < ${count}; i++) await ev.publish({ type: 'order.created', data: { i } })
      process.stdout.write('spooled ' + ev.inspect().outbox.depth + '\\n')
      setInterval(() => {}, 1000)
    } else {
      process.stdout.write('resumed ' + ev.inspect().outbox.depth + '\\n')
      await ev.flush()
      process.stdout.write('drained ' + JSON.stringify(ev.inspect().outbox) + '\\n')
      await ev.close()
      await mesh.close()
    }
  `
}

/** Runs a script; resolves with the child once its stdout has a line matching `ready`. */
function run(script: string, ready: RegExp): Promise<{ child: ChildProcess; line: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let out = ''
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const line = out.split('\n').find((l) => ready.test(l))
      if (line !== undefined) resolve({ child, line, exited })
    })
    void exited.then((code) => reject(new Error(`publisher exited with ${code} before ${ready}: ${out}${err}`)))
  })
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

describe('outbox across a crash', () => {
  const t = new Teardown()
  afterEach(() => t.run())
  beforeAll(() => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
    execFileSync(process.execPath, [tsc, '-b', `${PACKAGE_DIR}/tsconfig.json`], { stdio: 'inherit' })
  }, 120_000)

  it(`a publisher SIGKILLed with ${N} events spooled: the next process on its outbox forwards them all`, { timeout: 60_000 }, async () => {
    const dataDir = await tempDir(t)
    let control = await startTestControl(t, { dataDir })
    const port = control.port
    const inbox = new Inbox()
    await serveReceivers(t, 'node:http', await meshOf(t, control, 'audit'), (ev) => ev.trigger('audit', { filters: [{ exact: { type: 'order.created' } }], delivery: { retry: 50, backoffDelay: 'PT0.05S' } }, (e) => inbox.add(e)))
    await triggerReady(control, 'audit')
    const url = control.url
    await control.close()

    const outbox = await tempDir(t, 'meshlet-outbox-')
    const first = await run(publisherScript(url, outbox, N), /^spooled \d+$/)
    t.add(() => kill9(first.child))
    expect(first.line).toBe(`spooled ${N}`)
    await kill9(first.child)
    expect(first.child.signalCode).toBe('SIGKILL')

    control = await startTestControl(t, { dataDir, port })
    const second = await run(publisherScript(url, outbox, 0), /^drained /)
    t.add(() => kill9(second.child))
    expect(JSON.parse(second.line.slice('drained '.length))).toMatchObject({ depth: 0, forwarded: N, rejected: 0 })
    expect(await second.exited).toBe(0)
    await inbox.until(() => inbox.distinct('order.created').length === N)
    expect(inbox.distinct('order.created').map((e) => (e.data as { i: number }).i).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i))
  })
})
