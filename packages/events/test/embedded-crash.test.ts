/**
 * The embedded backend as a real process (the compiled backend in packages/events/dist, built
 * first): SIGKILL while appending or consuming, a write error from a file size limit; the parent
 * reopens the directory and checks what the child had been told.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { BrokerBackend, Delivery } from '../src/broker/broker-backend.js'
import { createEmbeddedBackend } from '../src/index.js'

const packageDir = fileURLToPath(new URL('..', import.meta.url))
const childScript = fileURLToPath(new URL('fixtures/embedded-child.mjs', import.meta.url))
const broker = { namespace: 'crash', name: 'log' }
const idOf = (d: Delivery): string => (JSON.parse(new TextDecoder().decode(d.data)) as { id: string }).id

beforeAll(async () => {
  // tsc -b emits even when another file of the package has type errors; what matters is that the
  // embedded backend's output is there and newer than its sources.
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    execFileSync(process.execPath, [tsc, '-b', join(packageDir, 'tsconfig.json')], { stdio: 'pipe' })
  } catch {
    // checked below
  }
  for (const name of ['embedded-backend', 'embedded-consumer', 'segment-log', 'segment-file', 'cursor-store', 'group-commit', 'record-format', 'acked-set']) {
    const built = await stat(join(packageDir, 'dist/broker/embedded', `${name}.js`))
    const source = await stat(join(packageDir, 'src/broker/embedded', `${name}.ts`))
    expect(built.mtimeMs, `dist/broker/embedded/${name}.js is older than its source: tsc -b packages/events failed`).toBeGreaterThanOrEqual(source.mtimeMs)
  }
}, 180_000)

const dirs: string[] = []
const children: ChildProcess[] = []
const opened: BrokerBackend[] = []
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await Promise.allSettled(opened.splice(0).map((b) => b.close()))
})
afterAll(() => Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true }))))

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-embedded-crash-'))
  dirs.push(dir)
  return dir
}

/** Starts the child; `onLine` sees each stdout line; resolves with the child once it exits. */
function runChild(command: string, args: string[], onLine: (line: string, child: ChildProcess) => void): { child: ChildProcess; exited: Promise<void> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()))
  const lines = createInterface({ input: child.stdout! })
  lines.on('line', (line) => onLine(line, child))
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', reject)
    // Every line is read before the promise settles.
    lines.on('close', () => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())))
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') reject(new Error(`child exited with ${code ?? signal}: ${stderr}`))
    })
  })
  return { child, exited }
}

async function reopen(dir: string, segmentBytes = 32 * 1024): Promise<BrokerBackend> {
  const backend = await createEmbeddedBackend({ dir, segmentBytes })
  opened.push(backend)
  return backend
}

/** Every event in the log, in order, through the trigger the child created before its first append. */
async function everyEvent(backend: BrokerBackend): Promise<{ ids: string[]; seqs: number[] }> {
  const consumer = await backend.consumer(broker, 'audit', { maxInFlight: 512 })
  const ids: string[] = []
  const seqs: number[] = []
  // Acks in windows, as a dispatcher's run: concurrent acks share one cursor write.
  let acks: Promise<void>[] = []
  while ((await consumer.lag()) > 0) {
    const d = await consumer.next()
    ids.push(idOf(d))
    seqs.push(d.seq)
    acks.push(d.ack())
    if (acks.length === 256) {
      await Promise.all(acks)
      acks = []
    }
  }
  await Promise.all(acks)
  await consumer.close()
  return { ids, seqs }
}

describe('embedded backend crash safety (real processes)', () => {
  it('loses no acknowledged append when SIGKILLed mid-stream, and holds no event twice', { timeout: 120_000 }, async () => {
    const dir = await tempDir()
    const acked = new Set<string>()
    const { exited } = runChild(process.execPath, [childScript, 'append', dir, String(32 * 1024)], (line, child) => {
      if (!line.startsWith('ack ')) return
      for (const id of line.slice(4).split(' ')) acked.add(id)
      if (acked.size >= 5000 && child.signalCode === null) child.kill('SIGKILL')
    })
    await exited
    expect(acked.size).toBeGreaterThanOrEqual(5000)

    const backend = await reopen(dir)
    const { ids, seqs } = await everyEvent(backend)
    const stored = new Set(ids)
    expect(stored.size).toBe(ids.length) // no duplicates
    for (const id of acked) expect(stored.has(id), id).toBe(true)
    // Seqs are consecutive from 1, and one append's events stay together in order.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1))
    for (let i = 1; i < ids.length; i++) {
      const [w, n, k] = ids[i]!.split('-')
      if (k !== '0') expect(ids[i - 1]).toBe(`${w}-${n}-${Number(k) - 1}`)
    }
    // The log takes appends again after the torn tail (if any) was cut.
    const stats = await backend.stats(broker)
    await backend.append(broker, [new TextEncoder().encode('{"id":"after"}')])
    expect((await backend.stats(broker)).nextSeq).toBe(stats.nextSeq + 1)
  })

  it('after a SIGKILL mid-consumption, hands out again exactly the unacked events, with deliveryCount > 1', { timeout: 120_000 }, async () => {
    const dir = await tempDir()
    {
      const backend = await reopen(dir)
      await (await backend.consumer(broker, 'c')).close()
      await backend.append(broker, Array.from({ length: 2000 }, (_, i) => new TextEncoder().encode(JSON.stringify({ id: `e-${i}` }))))
      await backend.close()
    }
    const acked = new Set<number>()
    const handedOut = new Set<number>()
    const { exited } = runChild(process.execPath, [childScript, 'consume', dir, String(32 * 1024)], (line, child) => {
      const [kind, seq] = line.split(' ')
      if (kind === 'got') handedOut.add(Number(seq))
      if (kind === 'acked') acked.add(Number(seq))
      if (acked.size >= 300 && child.signalCode === null) child.kill('SIGKILL')
    })
    await exited
    expect(acked.size).toBeGreaterThanOrEqual(300)

    const backend = await reopen(dir)
    const consumer = await backend.consumer(broker, 'c', { maxInFlight: 512 })
    const seen = new Map<number, number>()
    let acks: Promise<void>[] = []
    while ((await consumer.lag()) > 0) {
      const d = await consumer.next()
      seen.set(d.seq, d.deliveryCount)
      acks.push(d.ack())
      if (acks.length === 256) {
        await Promise.all(acks)
        acks = []
      }
    }
    await Promise.all(acks)
    for (const seq of acked) expect(seen.has(seq), `acked seq ${seq} handed out again`).toBe(false)
    // Never handed out: must come now. Handed out but not reported acked: its ack may have become
    // durable just before the kill (the report line did not make it out), so it is either handed out
    // again, with deliveryCount > 1, or gone because its ack was kept.
    for (let seq = 1; seq <= 2000; seq++) if (!handedOut.has(seq)) expect(seen.has(seq), `seq ${seq}, never handed out, lost`).toBe(true)
    for (const seq of handedOut) if (!acked.has(seq) && seen.has(seq)) expect(seen.get(seq), `seq ${seq}`).toBeGreaterThan(1)
  })

  it('fails appends whose write fails (a file size limit: EFBIG) with BROKER_UNAVAILABLE and leaves no trace of them', { timeout: 120_000 }, async () => {
    const dir = await tempDir()
    const acked = new Set<string>()
    const failed = new Set<string>()
    const codes = new Set<string>()
    // RLIMIT_FSIZE, set by the shell for the child alone (Node ignores SIGXFSZ, so writes fail with EFBIG).
    const { exited } = runChild('/bin/sh', ['-c', 'ulimit -f 256 && exec "$0" "$@"', process.execPath, childScript, 'append', dir, String(64 * 1024 * 1024), '40'], (line) => {
      const [kind, ...rest] = line.split(' ')
      if (kind === 'ack') for (const id of rest) acked.add(id)
      if (kind === 'fail') {
        codes.add(rest[0]!)
        for (const id of rest.slice(1)) failed.add(id)
      }
    })
    await exited
    expect(codes).toEqual(new Set(['MESHLET_ERR_BROKER_UNAVAILABLE']))
    expect(failed.size).toBeGreaterThan(0)
    expect(acked.size).toBeGreaterThan(100)

    const backend = await reopen(dir)
    const { ids } = await everyEvent(backend)
    expect(new Set(ids)).toEqual(acked)
    for (const id of failed) expect(ids).not.toContain(id)
  })
})
