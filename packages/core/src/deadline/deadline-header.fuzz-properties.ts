/** Properties of the `meshlet-deadline` header as a server reads it: a deadline, or a coded refusal. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ErrorCodes, isMeshletError } from '../errors.js'
import type { FuzzSuite } from '../fuzz-runner.fuzz-properties.js'
import { inboundDeadline } from '../server/deadline-role.js'
import { MAX_INBOUND_DEADLINE_MS, parseDeadlineHeader } from './call-scope.js'

const NOW = 1_800_000_000_000

/** What a peer may put in the header: digits of any length, near-numbers, junk, and several values. */
const headerText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 0, maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(...'0123456789 +-.eExX_\t\r\n,'), maxLength: 30 }),
  fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
  fc.double().map(String),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.string({ maxLength: 5000 }),
)
const headerValue = fc.oneof(fc.constant(undefined), headerText, fc.array(headerText, { maxLength: 4 }))
/** grpc-timeout as grpc-js reports it: a time, Infinity, and what a bug might pass. */
const transport = fc.oneof(fc.constant(Infinity), fc.integer({ min: NOW - 10_000_000, max: NOW + 10_000_000 }), fc.double())

export const deadlineHeaderSuite: FuzzSuite = {
  name: 'deadline-header',
  regressions: new URL('./deadline-header.fuzz-regressions.json', import.meta.url),
  properties: [
    {
      name: 'parseDeadlineHeader gives Infinity when absent, a deadline at most a day ahead for digits, else BAD_HEADER',
      make: () => ({
        property: fc.property(headerValue, (v) => {
          const d = parseDeadlineHeader(v, NOW)
          const first = Array.isArray(v) ? v[0] : v
          if (v === undefined) return assert.equal(d, Infinity)
          if (first !== undefined && /^\d{1,15}$/.test(first)) {
            assert.equal(d, Math.min(Number(first), NOW + MAX_INBOUND_DEADLINE_MS))
          } else {
            assert.ok(isMeshletError(d) && d.code === ErrorCodes.BAD_HEADER, `got ${String(d)}`)
            // The peer's text is shown cut short: a megabyte of junk does not become a megabyte of log.
            assert.ok(d.message.length < 300)
          }
        }),
      }),
    },
    {
      name: 'a deadline written as digits reads back as itself (within a day ahead)',
      make: () => ({
        property: fc.property(fc.integer({ min: 0, max: NOW + MAX_INBOUND_DEADLINE_MS }), (deadline) => {
          assert.equal(parseDeadlineHeader(String(deadline), NOW), deadline)
        }),
      }),
    },
    {
      name: 'inboundDeadline gives a time after now no later than header or transport, or a 400/504 refusal never marked rejected',
      make: () => ({
        property: fc.property(headerValue, transport, (header, transportDeadline) => {
          const d = inboundDeadline(header, transportDeadline, NOW, 'payments')
          if (typeof d === 'number') {
            assert.ok(d > NOW && !Number.isNaN(d), `deadline ${d}`)
            assert.ok(d <= transportDeadline)
            const parsed = parseDeadlineHeader(header, NOW)
            assert.ok(typeof parsed === 'number' && d <= parsed)
          } else {
            assert.ok(d.status === 400 || d.status === 504, `status ${d.status}`)
            assert.equal(d.rejected, false)
            assert.equal(d.error.code, d.status === 400 ? ErrorCodes.BAD_HEADER : ErrorCodes.DEADLINE)
          }
        }),
      }),
    },
  ],
}
