/**
 * The grpc scenario: plain grpc-js client → plain grpc-js server vs a meshlet client
 * (`register(mesh)`, `meshlet:///echo`, the mesh's interceptors, default policy: retries through
 * service config, breaker, outlier ejection, timeout, metrics, trace context) → a meshlet server
 * (server interceptors, admission on). Both servers live in one child process
 * (bench/dist/grpc-server.js), so client and server never share an event loop.
 *   unary   echo of 1 KiB at c=64: throughput, p50/p99; target meshlet ≥ 0.90× plain. A third variant,
 *           the meshlet client against the plain server, splits the cost between client and server;
 *           three more, plain grpc-js with a no-op interceptor, with meshlet's retry service config and
 *           with a deadline on every call, are what grpc-js itself costs for each of those; the last,
 *           all three together with meshlet's default 15 s timeout ("configured alike"), is grpc-js
 *           doing the per-call work meshlet asks of it.
 *   stream  server streaming, STREAM_MESSAGES × STREAM_BYTES per call: messages/s
 */
import { join } from 'node:path'
import { credentials, InterceptingCall, type Interceptor } from '@grpc/grpc-js'
import { createMesh, type Mesh } from '@meshlet/core'
import { meshClientOptions, meshTarget, register } from '@meshlet/grpc'
import { closedLoop, type Send } from './load.js'
import { launch, nextMessage, stop } from './procs.js'
import { check, envNumber, interleave, printTable, round3, type Totals } from './report.js'
import { EchoClient, STREAM_BYTES, STREAM_MESSAGES } from './grpc-service.js'

// Many short interleaved rounds: this 2-core VM's speed drifts by ±30% over minutes, and short
// alternation spreads the drift evenly over the variants (3 rounds of 5 s did not).
const SECONDS = envNumber('BENCH_GRPC_SECONDS', 1.5)
const WARMUP = envNumber('BENCH_GRPC_WARMUP', 0.3)
const ROUNDS = Math.round(envNumber('BENCH_GRPC_ROUNDS', 8))
const CONCURRENCY = 64
const STREAM_CONCURRENCY = 16
const REQUEST = Buffer.alloc(1024, 'x')
const EMPTY = Buffer.alloc(0)

/** What `serviceConfigFor` gives the default mesh policy: 2 retries on UNAVAILABLE, a 20% budget (LB policy aside). */
const RETRY_SERVICE_CONFIG = {
  methodConfig: [{ name: [{}], retryPolicy: { maxAttempts: 3, initialBackoff: '0.025s', maxBackoff: '0.25s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] } }],
  retryThrottling: { maxTokens: 100, tokenRatio: 0.2 },
}

/** Unary calls; with `deadlineMs`, each call has a deadline that far ahead (as the mesh's timeout gives every call). */
function unarySender(client: EchoClient, deadlineMs?: number): Send {
  if (deadlineMs === undefined) return () => new Promise((resolve, reject) => client.Echo(REQUEST, (err) => (err ? reject(err) : resolve(200))))
  return () => new Promise((resolve, reject) => client.Echo(REQUEST, { deadline: Date.now() + deadlineMs }, (err) => (err ? reject(err) : resolve(200))))
}

/** One server-streaming call; fails unless all STREAM_MESSAGES arrive. */
function streamSender(client: EchoClient): Send {
  return () =>
    new Promise((resolve, reject) => {
      let n = 0
      const call = client.Stream(EMPTY)
      call.on('data', () => n++)
      call.on('error', reject)
      call.on('end', () => (n === STREAM_MESSAGES ? resolve(200) : reject(new Error(`stream ended after ${n} of ${STREAM_MESSAGES} messages`))))
    })
}

export async function grpc(): Promise<Record<string, unknown>> {
  const server = launch(process.execPath, [join(import.meta.dirname, 'grpc-server.js')], { ipc: true })
  const clients: EchoClient[] = []
  let unregister = (): void => {}
  let mesh: Mesh | undefined
  try {
    const { ports } = await nextMessage(server, 'gRPC bench server ready', (m): m is { ports: [number, number] } => Array.isArray((m as { ports?: unknown }).ports), 20_000)
    const [plainPort, meshedPort] = ports
    mesh = await createMesh({ service: 'bench', services: { echo: { endpoints: [`http://127.0.0.1:${meshedPort}`] }, 'echo-plain': { endpoints: [`http://127.0.0.1:${plainPort}`] } }, shutdownSignals: false })
    unregister = register(mesh)
    const creds = credentials.createInsecure()
    const plain = new EchoClient(`127.0.0.1:${plainPort}`, creds)
    const meshed = new EchoClient(meshTarget('echo'), creds, meshClientOptions(mesh, 'echo'))
    // The meshlet client against the plain server: tells the client's share of the cost from the server's.
    const meshedClientOnly = new EchoClient(meshTarget('echo-plain'), creds, meshClientOptions(mesh, 'echo-plain'))
    // Floors inside grpc-js, no meshlet code: a do-nothing interceptor, and the retry service config
    // meshlet generates for the default policy (grpc-js then runs every call as a retrying call).
    const noop: Interceptor = (options, next) => new InterceptingCall(next(options))
    const noopInterceptor = new EchoClient(`127.0.0.1:${plainPort}`, creds, { interceptors: [noop] })
    const retryConfig = new EchoClient(`127.0.0.1:${plainPort}`, creds, { 'grpc.service_config': JSON.stringify(RETRY_SERVICE_CONFIG) })
    // All three at once, and a 15 s deadline per call (the mesh's default timeout): grpc-js doing the
    // per-call work meshlet asks of it, so that meshlet / this is meshlet's own cost.
    const alike = new EchoClient(`127.0.0.1:${plainPort}`, creds, { interceptors: [noop], 'grpc.service_config': JSON.stringify(RETRY_SERVICE_CONFIG) })
    clients.push(plain, meshed, meshedClientOnly, noopInterceptor, retryConfig, alike)

    const run = (concurrency: number) => async (_name: string, send: Send) => {
      await closedLoop(send, { concurrency, seconds: WARMUP })
      return closedLoop(send, { concurrency, seconds: SECONDS })
    }
    console.log(`grpc unary: 1 KiB echo, c=${CONCURRENCY}, ${WARMUP} s warm-up + ${SECONDS} s per run, ${ROUNDS} interleaved rounds`)
    const unary = await interleave({
        'grpc-js': unarySender(plain),
        meshlet: unarySender(meshed),
        'meshlet client only': unarySender(meshedClientOnly),
        'grpc-js no-op interceptor': unarySender(noopInterceptor),
        'grpc-js retry config': unarySender(retryConfig),
        'grpc-js deadline': unarySender(plain, 10_000),
        'grpc-js configured alike': unarySender(alike, 15_000),
      }, ROUNDS, run(CONCURRENCY))
    console.log(`grpc stream: ${STREAM_MESSAGES} × ${STREAM_BYTES} B messages per call, c=${STREAM_CONCURRENCY}, ${ROUNDS} interleaved rounds`)
    const stream = await interleave({ 'grpc-js': streamSender(plain), meshlet: streamSender(meshed) }, ROUNDS, run(STREAM_CONCURRENCY))

    const rate = (t: Totals): number => t.requests / t.seconds
    const unaryRatio = round3(rate(unary.get('meshlet')!) / rate(unary.get('grpc-js')!))
    const streamRatio = round3(rate(stream.get('meshlet')!) / rate(stream.get('grpc-js')!))
    printTable(
      `grpc unary, 1 KiB echo, c=${CONCURRENCY}, server in its own process`,
      [...unary].map(([k, t]) => {
        const s = t.summary()
        return { variant: k, 'calls/s': s.reqPerSec, 'vs grpc-js': round3(rate(t) / rate(unary.get('grpc-js')!)), 'p50 ms': s.p50Ms, 'p99 ms': s.p99Ms, 'client CPU µs/call': s.cpuUsPerRequest, 'calls/s per round': (s.perRound as number[]).join(' '), errors: s.errors }
      }),
    )
    printTable(
      `grpc server streaming, ${STREAM_MESSAGES} × ${STREAM_BYTES} B per call, c=${STREAM_CONCURRENCY}`,
      [...stream].map(([k, t]) => ({
        variant: k,
        'messages/s': Math.round(rate(t) * STREAM_MESSAGES),
        'vs grpc-js': round3(rate(t) / rate(stream.get('grpc-js')!)),
        'call p50 ms': round3(t.hist.percentile(50)),
        'call p99 ms': round3(t.hist.percentile(99)),
        'messages/s per round': t.perRound.map((x) => x * STREAM_MESSAGES).join(' '),
        errors: t.errors,
      })),
    )
    printTable('grpc targets', [
      { metric: 'meshlet / grpc-js unary calls/s', value: unaryRatio, target: '>= 0.90', result: check(unaryRatio >= 0.9) },
      { metric: 'meshlet client only / grpc-js configured alike unary calls/s', value: round3(rate(unary.get('meshlet client only')!) / rate(unary.get('grpc-js configured alike')!)), target: '', result: '' },
      { metric: 'meshlet client only / grpc-js unary calls/s', value: round3(rate(unary.get('meshlet client only')!) / rate(unary.get('grpc-js')!)), target: '', result: '' },
      { metric: 'grpc-js no-op interceptor / grpc-js unary calls/s', value: round3(rate(unary.get('grpc-js no-op interceptor')!) / rate(unary.get('grpc-js')!)), target: '', result: '' },
      { metric: 'grpc-js retry config / grpc-js unary calls/s', value: round3(rate(unary.get('grpc-js retry config')!) / rate(unary.get('grpc-js')!)), target: '', result: '' },
      { metric: 'grpc-js deadline / grpc-js unary calls/s', value: round3(rate(unary.get('grpc-js deadline')!) / rate(unary.get('grpc-js')!)), target: '', result: '' },
      { metric: 'meshlet / grpc-js streamed messages/s', value: streamRatio, target: '', result: '' },
    ])
    return {
      unary: Object.fromEntries([...unary].map(([k, t]) => [k, t.summary()])),
      stream: Object.fromEntries([...stream].map(([k, t]) => [k, { ...t.summary(), messagesPerSec: Math.round(rate(t) * STREAM_MESSAGES) }])),
      ratios: { unary: unaryRatio, stream: streamRatio },
      config: { concurrency: CONCURRENCY, streamConcurrency: STREAM_CONCURRENCY, streamMessages: STREAM_MESSAGES, streamBytes: STREAM_BYTES, seconds: SECONDS, warmup: WARMUP, rounds: ROUNDS },
    }
  } finally {
    for (const c of clients) c.close()
    unregister()
    await mesh?.close()
    await stop(server)
  }
}
