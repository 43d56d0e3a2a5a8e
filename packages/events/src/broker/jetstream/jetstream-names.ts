import { ErrorCodes, MeshletError } from '@meshlet/core'
import type { BrokerRef } from '../broker-backend.js'

/**
 * Where a broker lives in JetStream: one stream `<prefix>_<namespace>_<broker>` capturing one
 * subject `<prefix>.<namespace>.<broker>`, and one durable consumer per trigger.
 *
 * Stream and consumer names cannot hold `.`, `*`, `>`, whitespace or path separators (file storage
 * makes them directory names), and subject tokens cannot hold `.`, `*`, `>` or whitespace. DNS labels
 * (`[a-z0-9-]`) pass through unchanged; any other character is written as `=` and the hex of its
 * UTF-8 bytes. `_` is always escaped, so it only ever separates, and distinct names never collide.
 */
export interface BrokerStreamNames {
  readonly stream: string
  readonly subject: string
}

/** A file name limit (NAME_MAX on Linux): stream and consumer names become directory names. */
const MAX_NAME_BYTES = 255
const PREFIX = /^[A-Za-z0-9-]{1,64}$/
const DNS_LABEL_CHAR = /[a-z0-9-]/

/** True when `prefix` is usable as the stream-name prefix (letters, digits, `-`; no `_`, which separates). */
export function isValidStreamPrefix(prefix: string): boolean {
  return PREFIX.test(prefix)
}

/** One name as a token that is safe in stream names, consumer names and subjects. */
export function encodeNameToken(name: string): string {
  let out = ''
  for (const char of name) {
    if (DNS_LABEL_CHAR.test(char)) {
      out += char
      continue
    }
    for (const byte of Buffer.from(char, 'utf8')) out += `=${byte.toString(16).padStart(2, '0')}`
  }
  return out
}

function checkedToken(what: string, name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new MeshletError(ErrorCodes.BAD_REQUEST, `The ${what} name must be a non-empty string.`, { details: { [what]: name } })
  }
  return encodeNameToken(name)
}

function checkedLength(what: string, value: string, name: string): string {
  if (Buffer.byteLength(value) > MAX_NAME_BYTES) {
    throw new MeshletError(ErrorCodes.BAD_REQUEST, `The ${what} name "${name}" is too long for JetStream (${Buffer.byteLength(value)} bytes once escaped, at most ${MAX_NAME_BYTES}).`, {
      details: { [what]: name },
    })
  }
  return value
}

export function brokerStreamNames(prefix: string, broker: BrokerRef): BrokerStreamNames {
  const namespace = checkedToken('namespace', broker.namespace)
  const name = checkedToken('broker', broker.name)
  return {
    stream: checkedLength('broker', `${prefix}_${namespace}_${name}`, `${broker.namespace}/${broker.name}`),
    subject: `${prefix}.${namespace}.${name}`,
  }
}

/** The durable consumer's name; it is scoped by its stream, so the trigger name alone suffices. */
export function triggerDurableName(trigger: string): string {
  return checkedLength('trigger', checkedToken('trigger', trigger), trigger)
}
