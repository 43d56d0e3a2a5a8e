/**
 * The `meshlet` name resolver: `meshlet:///payments` resolves (through the mesh named by the
 * client options, the authority, or else the one registered last) to the endpoints of the
 * mesh destination `payments`, follows its discovery live, and hands the destination and the
 * service config generated from its policy to the meshlet LB policy.
 */
import { diagnosticsChannels, type Destination } from '@meshlet/core'
import { experimental, status as Status, type ChannelOptions } from '@grpc/grpc-js'
import type { ServiceConfig } from '@grpc/grpc-js/build/src/service-config.js'
import { lookupRegistration } from './registry.js'
import { serviceConfigFor } from './service-config.js'

/** Channel argument carrying the destination to the LB policy; the prefix keeps it out of subchannel keys. */
export const DESTINATION_ARG = `${experimental.SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.meshlet.destination`
/** Channel option naming the registration to resolve through (set by meshClientOptions). */
export const MESH_ARG = `${experimental.SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.meshlet.mesh`

type Endpoint = experimental.Endpoint

function serviceOf(target: experimental.GrpcUri): string {
  return target.path.replace(/^\/+/, '')
}

/** `http://10.0.0.7:3001` → a gRPC endpoint address; the scheme only says TLS or not. */
export function endpointOf(url: string): Endpoint {
  const u = new URL(url)
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80
  return { addresses: [{ host: u.hostname.replace(/^\[|\]$/g, ''), port }] }
}

export class MeshletResolver implements experimental.Resolver {
  readonly #target: experimental.GrpcUri
  readonly #listener: experimental.ResolverListener
  readonly #meshId: unknown
  #scheduled = false
  #destroyed = false
  readonly #onChange = (message: unknown): void => {
    if ((message as { service?: string }).service === serviceOf(this.#target)) this.#schedule()
  }

  constructor(target: experimental.GrpcUri, listener: experimental.ResolverListener, options: ChannelOptions) {
    this.#target = target
    this.#listener = listener
    this.#meshId = options[MESH_ARG]
    diagnosticsChannels.endpointsChanged.subscribe(this.#onChange)
    diagnosticsChannels.configApplied.subscribe(this.#onChange)
  }

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    return serviceOf(target)
  }

  updateResolution(): void {
    this.#destroyed = false
    this.#schedule()
  }

  destroy(): void {
    this.#destroyed = true
    diagnosticsChannels.endpointsChanged.unsubscribe(this.#onChange)
    diagnosticsChannels.configApplied.unsubscribe(this.#onChange)
  }

  /** Never calls the listener synchronously (the grpc-js contract); bursts of changes coalesce. */
  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      void this.#resolve()
    })
  }

  async #resolve(): Promise<void> {
    const service = serviceOf(this.#target)
    const reg = lookupRegistration(this.#target.authority, this.#meshId)
    const fail = (details: string) => {
      if (!this.#destroyed) this.#listener(experimental.statusOrFromError({ code: Status.UNAVAILABLE, details }), {}, null, details)
    }
    if (reg === undefined) {
      return fail(
        this.#target.authority
          ? `meshlet: no mesh "${this.#target.authority}" is registered for target meshlet://${this.#target.authority}/${service}; call register(mesh) from @meshlet/grpc first.`
          : `meshlet: no mesh is registered for target meshlet:///${service}; call register(mesh) from @meshlet/grpc first.`,
      )
    }
    const dest: Destination | undefined = reg.mesh.destination(service)
    if (dest === undefined) return fail(`meshlet: "${service}" is not a service of mesh "${reg.mesh.service}" (add it to \`services\` or register it with the control endpoint).`)
    await dest.ready
    if (this.#destroyed) return
    const endpoints = dest.balancer.snapshot().map((e) => endpointOf(e.url))
    const config: ServiceConfig = serviceConfigFor(service)
    this.#listener(experimental.statusOrFromValue(endpoints), { [DESTINATION_ARG]: dest }, experimental.statusOrFromValue(config), `meshlet destination "${service}" (${dest.snapshot().resolver})`)
  }
}
