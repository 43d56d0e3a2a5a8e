/**
 * The meshes `register()` made known to grpc-js. Resolver and LB types are global in grpc-js, so
 * they are registered once. A target resolves through the mesh its client options name
 * (meshClientOptions), else the one its authority names (`meshlet://<mesh service>/...`), else the
 * one registered last.
 */
import type { Mesh } from '@meshlet/core'

export interface Registration {
  /** Names the registration in a channel option, so a client made with meshClientOptions(mesh) resolves through `mesh`. */
  readonly id: string
  readonly mesh: Mesh
  /** Methods (`/pkg.Service/Method`) or services (`pkg.Service`) whose calls may be repeated. */
  readonly idempotent: readonly string[]
}

const registrations: Registration[] = []

let counter = 0

export function addRegistration(mesh: Mesh, idempotent: readonly string[]): () => void {
  const r: Registration = { id: `${mesh.service}#${++counter}`, mesh, idempotent }
  registrations.push(r)
  return () => {
    const i = registrations.indexOf(r)
    if (i >= 0) registrations.splice(i, 1)
  }
}

export function lookupRegistration(authority: string | undefined, id?: unknown): Registration | undefined {
  if (typeof id === 'string') {
    const r = registrations.find((x) => x.id === id)
    if (r !== undefined) return r
  }
  for (let i = registrations.length - 1; i >= 0; i--) {
    const r = registrations[i]!
    if (!authority || r.mesh.service === authority) return r
  }
  return undefined
}

export function registrationOf(mesh: Mesh): Registration | undefined {
  for (let i = registrations.length - 1; i >= 0; i--) if (registrations[i]!.mesh === mesh) return registrations[i]
  return undefined
}
