/**
 * The triggers one mesh advertises, over every `events(mesh)` made on it: a mesh has one
 * registration, so the list it sends is the union, and a trigger name is taken once per mesh.
 * Each change hands the whole list to `mesh.advertise`, which replaces the held lease if needed.
 */
import { ErrorCodes, MeshletError, type Mesh } from '@meshlet/core'
import type { AdvertisedTrigger } from '../resources/event-specs.js'

const byMesh = new WeakMap<Mesh, Map<string, AdvertisedTrigger>>()

/** Adds `trigger` to what `mesh` advertises; MESHLET_ERR_CONFIG_INVALID when its name is taken. */
export function advertiseTrigger(mesh: Mesh, trigger: AdvertisedTrigger): void {
  let triggers = byMesh.get(mesh)
  if (triggers === undefined) byMesh.set(mesh, (triggers = new Map()))
  if (triggers.has(trigger.name)) {
    throw new MeshletError(ErrorCodes.CONFIG_INVALID, `Trigger "${trigger.name}" is declared twice on mesh "${mesh.service}"; trigger names are unique per service.`, { details: { trigger: trigger.name } })
  }
  triggers.set(trigger.name, trigger)
  mesh.advertise([...triggers.values()])
}

/** Stops advertising the named triggers (an `events(mesh)` closed). */
export function withdrawTriggers(mesh: Mesh, names: Iterable<string>): void {
  const triggers = byMesh.get(mesh)
  if (triggers === undefined) return
  let changed = false
  for (const name of names) changed = triggers.delete(name) || changed
  if (changed) mesh.advertise([...triggers.values()])
}
