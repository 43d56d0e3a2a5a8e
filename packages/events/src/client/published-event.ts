/**
 * What `publish` sends: the caller's event, with the attributes a publisher must set filled in when
 * absent — `id` (a UUID), `source` (`/<namespace>/<service>` of the mesh), `specversion` (1.0) and
 * `time` (now). Only a publisher invents them; a receiver takes an event exactly as delivered.
 * An event that is still not valid is refused with MESHLET_ERR_EVENT_INVALID naming the attribute.
 */
import { randomUUID } from 'node:crypto'
import { ErrorCodes, MeshletError } from '@meshlet/core'
import { CloudEvent } from 'cloudevents'
import { withAttributes, type EventInput } from '../codec/index.js'

/** A CloudEvent, or its attributes (`type` at least) as a plain object. */
export type PublishableEvent = CloudEvent<unknown> | ({ type: string } & Record<string, unknown>)

export function publishedEvent(input: PublishableEvent, source: string): CloudEvent<unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new MeshletError(ErrorCodes.EVENT_INVALID, `publish() takes a CloudEvent or an object of its attributes (at least "type"), got ${Array.isArray(input) ? 'an array inside the list' : input === null ? 'null' : typeof input}.`, { details: { attribute: 'event', rule: 'object' } })
  }
  // The SDK's constructor has filled id, time and specversion of a CloudEvent already; it is checked as is.
  if (input instanceof CloudEvent) return withAttributes(input, {})
  const given: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input)) if (v !== undefined) given[k] = v
  return withAttributes({ id: randomUUID(), source, specversion: '1.0', time: new Date().toISOString() } as EventInput, given)
}
