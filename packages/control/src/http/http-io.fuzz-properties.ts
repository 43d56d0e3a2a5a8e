/**
 * Properties of the control endpoint's body reader (`readJsonBody`) behind a real server on
 * loopback: any body gives its JSON value or a coded refusal (400, 413, 415), never another
 * error, and a body over the limit is refused having read at most the limit and a socket's worth.
 * The suite's shape is core's FuzzSuite (fuzz-runner.fuzz-properties.ts), written out structurally.
 */
import assert from 'node:assert/strict'
import { createServer, request, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { ControlError } from '../errors.js'
import { readJsonBody } from './http-io.js'

const LIMIT = 4096

/** Content types with whether the reader takes them as JSON. */
const CONTENT_TYPES: [string | undefined, boolean][] = [
  [undefined, true],
  ['application/json', true],
  ['application/json; charset=utf-8', true],
  ['application/merge-patch+json', true],
  ['APPLICATION/JSON', true],
  ['text/plain', false],
  ['application/jsonx', false],
  ['application/x-www-form-urlencoded', false],
  ['multipart/form-data; boundary=x', false],
]

const encoder = new TextEncoder()
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`
const body = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((v) => encoder.encode(JSON.stringify(v))),
  fc.integer({ min: 1, max: 2000 }).map((d) => encoder.encode(nested(d))),
  fc.uint8Array({ maxLength: 300 }),
  fc.string({ maxLength: 200 }).map((s) => encoder.encode(s)),
  fc.integer({ min: LIMIT - 2, max: LIMIT * 3 }).map((n) => encoder.encode(JSON.stringify('x'.repeat(n)))),
  fc.constant(new Uint8Array(0)),
)

function depthOf(v: unknown): number {
  return typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0
}

/** What the reader must answer for `bytes` sent as `type`: the parsed value, or the status of its refusal. */
function expected(bytes: Uint8Array, json: boolean): { status: 200; value: unknown } | { status: number } {
  if (!json) return { status: 415 }
  if (bytes.length > LIMIT) return { status: 413 }
  if (bytes.length === 0) return { status: 200, value: undefined }
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return { status: 400 }
  }
  return depthOf(value) > 32 ? { status: 400 } : { status: 200, value }
}

interface Answer {
  status: number
  body: { value?: unknown; empty?: true; code?: string; unexpected?: string; bytesRead?: number }
}

async function startReader(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    // Kept from the start: the request lets go of its socket once the reader gave up on the body.
    const socket = req.socket
    readJsonBody(req, LIMIT).then(
      (value) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value === undefined ? { empty: true } : { value })),
      (err: unknown) => {
        const bytesRead = socket.bytesRead
        if (!(err instanceof ControlError)) return void res.writeHead(500).end(JSON.stringify({ unexpected: String(err) }))
        res.writeHead(err.status, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ code: err.code, bytesRead }))
      },
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

function answerOf(res: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Answer['body'] }))
    res.on('error', reject)
  })
}

/** Sends `bytes` in the pieces `cuts` make, with or without a content-length. */
function send(port: number, bytes: Uint8Array, type: string | undefined, cuts: readonly number[], declareLength: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {}
    if (type !== undefined) headers['content-type'] = type
    if (declareLength) headers['content-length'] = bytes.length
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/', headers, agent: false }, (res) => answerOf(res).then(resolve, reject))
    // The server may answer (413, 415) and close before the body is all sent: that is allowed.
    req.on('error', () => undefined)
    const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b)
    let start = 0
    for (const c of [...at, bytes.length]) {
      if (c > start) req.write(bytes.subarray(start, c))
      start = Math.max(start, c)
    }
    req.end()
  })
}

export const bodyReaderSuite = {
  name: 'http-io',
  regressions: new URL('./http-io.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'readJsonBody answers any body with its JSON value or a 400/413/415 ControlError, never another error',
      runs: 150,
      make: async () => {
        const { server, port } = await startReader()
        return {
          property: fc.asyncProperty(body, fc.constantFrom(...CONTENT_TYPES), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), async (bytes, [type, json], cuts, declareLength) => {
            const answer = await send(port, bytes, type, cuts, declareLength)
            assert.equal(answer.body.unexpected, undefined, answer.body.unexpected)
            const want = expected(bytes, json)
            assert.equal(answer.status, want.status, JSON.stringify(answer.body))
            if ('value' in want) assert.deepEqual(want.value === undefined ? answer.body.empty : answer.body.value, want.value === undefined ? true : want.value)
          }),
          release: () => new Promise<void>((resolve) => server.close(() => resolve())),
        }
      },
    },
    {
      name: 'an endless body is refused 413 having read at most the limit and a few socket reads',
      runs: 8,
      make: async () => {
        const { server, port } = await startReader()
        return {
          property: fc.asyncProperty(fc.integer({ min: 256, max: 64 * 1024 }), async (chunkSize) => {
            const answer = await new Promise<Answer>((resolve, reject) => {
              let answered = false
              const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
                answered = true
                answerOf(res).then((a) => (req.destroy(), resolve(a)), reject)
              })
              // Node 24 resets the connection instead of sending the early 413 (Node 20 sends it):
              // a reset is a refusal too, seen here as status 0. Open question, see the closing note.
              req.on('error', () => {
                answered = true
                resolve({ status: 0, body: {} } as Answer)
              })
              const piece = Buffer.alloc(chunkSize, 0x20)
              let sent = 0
              // One piece per turn of the event loop until answered (a loop would buffer it all before
              // connecting). After far more than the limit the client ends its body: Node 24's server
              // holds an early answer until then (Node 20 sends it at once); a reader that read it
              // all still fails the bound below.
              const pump = (): void => {
                if (answered) return
                if (sent >= 64 * LIMIT + 1024 * 1024) return void req.end()
                sent += chunkSize
                if (req.write(piece)) setImmediate(pump)
                else req.once('drain', pump)
              }
              pump()
            })
            if (answer.status === 0 && Number(process.versions.node.split('.')[0]) >= 24) return
            assert.equal(answer.status, 413)
            assert.equal(answer.body.code, 'MESHLET_ERR_TOO_LARGE')
            assert.ok(answer.body.bytesRead! <= LIMIT + 512 * 1024, `read ${answer.body.bytesRead} bytes for a ${LIMIT}-byte limit`)
          }),
          release: () => new Promise<void>((resolve) => server.close(() => resolve())),
        }
      },
    },
  ],
}
