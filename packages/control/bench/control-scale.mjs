// Control endpoint scale figures (run `pnpm build` first):
//   node packages/control/bench/control-scale.mjs [instances=10000] [watchers=1000]
// - registry: register N instances, RSS, list latency, heartbeat throughput
// - propagation: time from a PUT being acknowledged to the event arriving at each of W raw watchers
// The endpoint runs in a child process so its RSS and CPU are its own.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const N = Number(process.argv[2] ?? 10_000)
const W = Number(process.argv[3] ?? 1000)
const TOKEN = 'bench-admin'
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const out = (line) => process.stdout.write(`${line}\n`)
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]

const dir = await mkdtemp(join(tmpdir(), 'meshlet-bench-'))
const child = spawn(process.execPath, [cli, 'control', '--port', '0', '--data', dir], { env: { ...process.env, MESHLET_TOKEN: TOKEN, MESHLET_JOIN_TOKEN: 'bench-join' }, stdio: ['ignore', 'pipe', 'inherit'] })
const base = await new Promise((resolve, reject) => {
  let text = ''
  child.stdout.on('data', (c) => {
    text += c
    const m = /listening on (http:\/\/\S+)/.exec(text)
    if (m) resolve(new URL(m[1]))
  })
  child.once('exit', (code) => reject(new Error(`endpoint exited with ${code}`)))
})
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = request({ host: base.hostname, port: base.port, method, path, agent, headers: { authorization: `Bearer ${TOKEN}`, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => (res.statusCode < 300 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${method} ${path}: ${res.statusCode} ${Buffer.concat(chunks)}`))))
    })
    req.on('error', reject)
    req.end(data)
  })
}

async function pool(count, concurrency, fn) {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await fn(next++)
  }))
}

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024

try {
  const rss0 = rss()
  let t = performance.now()
  const ids = []
  await pool(N, 64, async (i) => {
    const r = JSON.parse(await call('POST', '/v1/instances', { service: `svc-${i % 100}`, port: 10_000 + (i % 50_000), revision: 'v1', zone: `z${i % 3}`, ttl: '1h' }))
    ids.push(r.id)
  })
  const regSecs = (performance.now() - t) / 1000
  out(`registry: ${N} instances registered in ${regSecs.toFixed(1)} s (${Math.round(N / regSecs)}/s, each fsynced); endpoint RSS ${rss0.toFixed(0)} → ${rss().toFixed(0)} MiB`)

  const listAll = []
  for (let i = 0; i < 20; i++) {
    t = performance.now()
    await call('GET', '/v1/instances')
    listAll.push(performance.now() - t)
  }
  const listOne = []
  for (let i = 0; i < 200; i++) {
    t = performance.now()
    await call('GET', `/v1/instances?service=svc-${i % 100}`)
    listOne.push(performance.now() - t)
  }
  out(`registry: list all ${N}: p50 ${pct(listAll, 50).toFixed(1)} ms, p99 ${pct(listAll, 99).toFixed(1)} ms; one service (${N / 100}): p50 ${pct(listOne, 50).toFixed(2)} ms, p99 ${pct(listOne, 99).toFixed(2)} ms`)

  t = performance.now()
  const beats = Math.max(N, 20_000)
  await pool(beats, 64, (i) => call('POST', `/v1/instances/${ids[i % ids.length]}/heartbeat`))
  const hbSecs = (performance.now() - t) / 1000
  out(`registry: ${beats} heartbeats in ${hbSecs.toFixed(1)} s = ${Math.round(beats / hbSecs)}/s (${N} instances at a 15 s TTL, beating every 5 s, need ${Math.round(N / 5)}/s); RSS ${rss().toFixed(0)} MiB`)

  // Propagation to W raw watchers, each on its own connection.
  const arrivals = new Map()
  let expectRv = 0
  let pendingResolve = () => {}
  let seen = 0
  const watchers = await Promise.all(Array.from({ length: W }, () => new Promise((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, path: '/v1/watch?kind=servicepolicies', agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let buf = ''
      let ready = false
      res.setEncoding('utf8')
      res.on('data', (c) => {
        buf += c
        let at
        while ((at = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, at)
          buf = buf.slice(at + 1)
          const e = JSON.parse(line)
          if (e.type === 'BOOKMARK' && !ready) {
            ready = true
            resolve(req)
          }
          if (e.type !== 'BOOKMARK' && e.resourceVersion === expectRv) {
            arrivals.get(expectRv).push(performance.now())
            if (++seen === W) pendingResolve()
          }
        }
      })
    })
    req.on('error', reject)
    req.end()
  })))
  const lat = []
  for (let i = 0; i < 30; i++) {
    seen = 0
    const done = new Promise((r) => (pendingResolve = r))
    // The event may overtake the PUT's response, so the RV to wait for is predicted (nothing else writes).
    expectRv = JSON.parse(await call('GET', '/healthz')).resourceVersion + 1
    arrivals.set(expectRv, [])
    const t0 = performance.now()
    await call('PUT', `/v1/servicepolicies/default/p${i % 5}`, { apiVersion: 'meshlet.dev/v1', kind: 'ServicePolicy', metadata: { name: `p${i % 5}` }, spec: { service: `p${i % 5}`, timeout: `${i + 1}s` } })
    await done
    for (const a of arrivals.get(expectRv)) lat.push(a - t0)
  }
  out(`propagation: PUT → event at each of ${W} watchers (one process, ${W} connections), 30 changes: p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms`)
  for (const w of watchers) w.destroy()
} finally {
  child.kill('SIGTERM')
  agent.destroy()
  await new Promise((r) => child.once('exit', r))
  await rm(dir, { recursive: true, force: true })
}
