/**
 * Properties of the watch stream as the mesh reads it: the same events however the bytes are
 * chunked, a ControlRequestError (never another exception) for junk, and memory held never past
 * the line limit. The last runs ControlClient.watch against a real server on loopback.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import type { WatchEvent } from '../resources/control-api.js'
import { ControlClient } from './control-client.js'
import { ControlRequestError } from './control-request-error.js'
import { WatchEventReader } from './watch-event-reader.js'

/** Names with multi-byte characters, so chunk boundaries fall inside UTF-8 sequences too. */
const text = fc.string({ unit: fc.constantFrom('a', 'z', '-', 'é', '中', '😀', '"', '\\', '\n'), maxLength: 12 })
const event: fc.Arbitrary<WatchEvent> = fc.oneof(
  fc.record({ type: fc.constant('BOOKMARK' as const), resourceVersion: fc.nat(), object: fc.constant(null) }),
  fc.record({
    type: fc.constantFrom('ADDED' as const, 'MODIFIED' as const, 'DELETED' as const),
    resourceVersion: fc.nat(),
    object: fc.record({ apiVersion: fc.constant('meshlet.dev/v1' as const), kind: fc.constantFrom('ServicePolicy', 'Route', 'Instance'), metadata: fc.record({ name: text, namespace: text }), spec: fc.record({ note: text }) }),
  }),
)

const encoder = new TextEncoder()
/** As the wire carries it (fast-check's records have no prototype; parsed JSON has Object's). */
const asJson = (events: readonly WatchEvent[]): WatchEvent[] => JSON.parse(JSON.stringify(events)) as WatchEvent[]
const ndjson = (events: readonly WatchEvent[], blankLines: boolean) => encoder.encode(events.map((e) => `${JSON.stringify(e)}\n${blankLines ? '\n' : ''}`).join(''))

/** `bytes` cut at the given points (taken modulo its length), as a network might deliver it. */
function chunked(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let start = 0
  for (const c of [...at, bytes.length]) {
    if (c > start) out.push(bytes.slice(start, c))
    start = Math.max(start, c)
  }
  return out
}

/** Reads `chunks`; the events read, or the error thrown (which must be a ControlRequestError). */
function readAll(reader: WatchEventReader, chunks: readonly Uint8Array[], limit: number): { events: WatchEvent[]; error?: ControlRequestError } {
  const events: WatchEvent[] = []
  for (const chunk of chunks) {
    try {
      events.push(...reader.push(chunk))
    } catch (err) {
      assert.ok(err instanceof ControlRequestError, `threw ${String(err)}`)
      assert.equal(err.code, 'MESHLET_ERR_BAD_REQUEST')
      return { events, error: err }
    }
    assert.ok(reader.pendingBytes <= limit, `holds ${reader.pendingBytes} bytes, over the ${limit}-byte limit`)
  }
  return { events }
}

/** Junk a broken proxy or a hostile endpoint might send: JSON that is no event, non-JSON, raw bytes. */
const junkLine = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  fc.constantFrom('{"type":"ADDED","resourceVersion":1,"object":null}', '{"type":"BOOKMARK","resourceVersion":-1}', '{"type":"NOPE","resourceVersion":1}', '<html>502 Bad Gateway</html>', 'data: {"type":"BOOKMARK"}', '{"type":"ADDED"'),
  fc.string({ unit: 'binary', maxLength: 40 }),
)

export const watchReaderSuite: FuzzSuite = {
  name: 'watch-event-reader',
  regressions: new URL('./watch-event-reader.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'the reader returns the same events whatever the chunking, blank lines skipped',
      make: () => ({
        property: fc.property(fc.array(event, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), fc.boolean(), (events, cuts, blanks) => {
          const { events: read, error } = readAll(new WatchEventReader('http://control'), chunked(ndjson(events, blanks), cuts), 1 << 20)
          assert.equal(error, undefined)
          assert.deepEqual(read, asJson(events))
        }),
      }),
    },
    {
      name: 'any bytes give well-formed events or a ControlRequestError, with memory held under the limit',
      make: () => ({
        property: fc.property(fc.array(fc.oneof(event.map((e) => JSON.stringify(e)), junkLine), { maxLength: 10 }), fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 20 }), (lines, raw, cuts) => {
          const bytes = new Uint8Array([...encoder.encode(lines.join('\n')), ...raw])
          const { events } = readAll(new WatchEventReader('http://control', 256), chunked(bytes, cuts), 256)
          for (const e of events) assert.ok(typeof e === 'object' && e !== null && typeof e.resourceVersion === 'number' && (e.type === 'BOOKMARK' || typeof e.object?.metadata?.name === 'string'))
        }),
      }),
    },
    {
      name: 'a line over the limit fails once the limit is passed, before its end, in any chunking',
      make: () => ({
        property: fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 700 }), (limit, times, chunkSize) => {
          const reader = new WatchEventReader('http://control', limit)
          const piece = new Uint8Array(chunkSize).fill(0x61)
          let fed = 0
          // An endless line: it must fail by the time limit + one chunk went in.
          for (;;) {
            try {
              reader.push(piece)
            } catch (err) {
              assert.ok(err instanceof ControlRequestError && /over \d+ bytes/.test(err.message))
              break
            }
            fed += chunkSize
            assert.ok(reader.pendingBytes <= limit && fed <= limit * times + chunkSize, `fed ${fed}`)
          }
        }),
      }),
    },
    {
      name: 'ControlClient.watch over loopback delivers the events whatever the server\'s write boundaries, and fails junk with a ControlRequestError',
      runs: 40,
      make: async () => {
        let script: { chunks: Uint8Array[] } = { chunks: [] }
        const server: Server = createServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' })
          const chunks = script.chunks
          const write = (i: number): void => {
            if (i === chunks.length) return void res.end()
            // Each write waits for the previous one to flush, so each tends to arrive as its own chunk.
            res.write(chunks[i], () => write(i + 1))
          }
          write(0)
        })
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
        const client = new ControlClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
        return {
          property: fc.asyncProperty(fc.array(event, { maxLength: 8 }), fc.option(junkLine, { nil: undefined }), fc.array(fc.nat(), { maxLength: 12 }), async (events, junk, cuts) => {
            const junkIsEvent = junk !== undefined && new WatchEventReaderProbe().isEvent(junk)
            fc.pre(!junkIsEvent)
            const bytes = new Uint8Array([...ndjson(events, false), ...(junk === undefined ? [] : encoder.encode(`${junk}\n`))])
            script = { chunks: chunked(bytes, cuts) }
            const read: WatchEvent[] = []
            const outcome = await client.watch({}, (batch) => void read.push(...batch)).then(
              () => undefined,
              (err: unknown) => err,
            )
            if (junk === undefined || junk.trim() === '') {
              assert.equal(outcome, undefined)
              assert.deepEqual(read, asJson(events))
            } else {
              assert.ok(outcome instanceof ControlRequestError && outcome.code === 'MESHLET_ERR_BAD_REQUEST', `watch ended with ${String(outcome)}`)
              assert.ok(read.length <= events.length)
              assert.deepEqual(read, asJson(events.slice(0, read.length)))
            }
          }),
          release: () => new Promise<void>((resolve) => server.close(() => resolve())),
        }
      },
    },
  ],
}

/** Whether one line alone reads as an event (some generated "junk" is a valid event by chance). */
class WatchEventReaderProbe {
  isEvent(line: string): boolean {
    try {
      return new WatchEventReader('probe').push(encoder.encode(`${line}\n`)).length > 0
    } catch {
      return false
    }
  }
}
