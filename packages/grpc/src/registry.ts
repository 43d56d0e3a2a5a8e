/**
 * The meshes `register()` made known to grpc-js. Resolver and LB types are global in grpc-js, so
 * they are registered once; targets pick their mesh by authority (`meshlet://<mesh service>/...`)
 * or take the one registered last (`meshlet:///...`).
 */
import type { Mesh } from '@meshlet/core'

export interface Registration {
  readonly mesh: Mesh
  /** Methods (`/pkg.Service/Method`) or services (`pkg.Service`) whose calls may be repeated. */
  readonly idempotent: readonly string[]
}

const registrations: Registration[] = []

export function addRegistration(r: Registration): () => void {
  registrations.push(r)
  return () => {
    const i = registrations.indexOf(r)
    if (i >= 0) registrations.splice(i, 1)
  }
}

export function lookupRegistration(authority: string | undefined): Registration | undefined {
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
