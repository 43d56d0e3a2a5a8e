/**
 * The `meshlet` LB policy: one pick-first leaf per endpoint keeps a subchannel connected to each
 * (as round_robin does), and publishes which are READY (connectivity.ts). An attempt made by the
 * mesh's client stack arrives pinned to the endpoint the stack picked (the call registry): the
 * picker hands it that endpoint's subchannel, queues it while that one is connecting, and fails it
 * UNAVAILABLE when it is not connected (the stack then retries elsewhere). A call made without the
 * mesh's interceptor is balanced here by the core's balancer among the READY endpoints, its
 * status, latency and load report fed back to it.
 */
import { LOAD_HEADER, newCallContext, parseLoadHeader, type CallContext, type Destination, type EndpointState } from '@meshlet/core'
import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions } from '@grpc/grpc-js'
import { pinnedEndpoint } from './call-registry.js'
import { keyOfState, setConnectivity } from './connectivity.js'
import { classifyStatus } from './grpc-status.js'
import { DESTINATION_ARG } from './resolver-meshlet.js'
import { ROUTE_REVISION_KEY } from './routing.js'
import { LB_POLICY_NAME } from './service-config.js'

type Endpoint = experimental.Endpoint
type Picker = experimental.Picker
type PickArgs = experimental.PickArgs
type PickResult = experimental.PickResult
type Leaf = experimental.LeafLoadBalancer

export class MeshletLoadBalancingConfig implements experimental.TypedLoadBalancingConfig {
  constructor(readonly service: string | undefined) {}
  getLoadBalancerName(): string {
    return LB_POLICY_NAME
  }
  toJsonObject(): object {
    return { [LB_POLICY_NAME]: this.service === undefined ? {} : { service: this.service } }
  }
  static createFromJson(obj: unknown): MeshletLoadBalancingConfig {
    const service = (obj as { service?: unknown } | null)?.service
    return new MeshletLoadBalancingConfig(typeof service === 'string' ? service : undefined)
  }
}

function textOf(v: string | Buffer | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined
}

function keyOfEndpoint(e: Endpoint): string {
  const a = e.addresses[0] as { host?: string; port?: number; path?: string } | undefined
  return a === undefined ? '' : a.path ?? `${a.host}|${a.port}`
}

/** Immutable, replaced on every state change: pins the stack's attempts, balances the others. */
class MeshletPicker implements Picker {
  readonly #dest: Destination | undefined
  readonly #ready: ReadonlyMap<string, Leaf>
  readonly #connecting: ReadonlySet<string>
  readonly #leaves: readonly Leaf[]
  /** Undefined while every endpoint is connected: the balancer then filters nothing. */
  readonly #usable: ((e: EndpointState) => boolean) | undefined
  /** For calls made without the mesh's interceptor: the balancer reads `tried`, `revision` and `hashKey`. */
  static readonly #ctx: CallContext = newCallContext('', Infinity, undefined, false)

  constructor(dest: Destination | undefined, ready: ReadonlyMap<string, Leaf>, connecting: ReadonlySet<string>, allReady: boolean) {
    this.#dest = dest
    this.#ready = ready
    this.#connecting = connecting
    this.#leaves = [...ready.values()]
    this.#usable = allReady ? undefined : (e) => ready.has(keyOfState(e))
  }

  pick(args: PickArgs): PickResult {
    const pinned = pinnedEndpoint(args.metadata, false)
    if (pinned !== undefined) return this.#pickPinned(args, pinned)
    // Taken out of this attempt's metadata (its own copy): a stale mark is never sent.
    pinnedEndpoint(args.metadata, true)
    const dest = this.#dest
    let e: EndpointState | undefined
    if (dest !== undefined) {
      // Without the interceptor, what a pick reads comes from the metadata: the routed revision and the ring-hash key.
      const revision = textOf(args.metadata.get(ROUTE_REVISION_KEY)[0])
      const hashHeader = dest.balancer.hashHeader
      const hashKey = hashHeader === undefined ? undefined : textOf(args.metadata.get(hashHeader)[0])
      const ctx = revision === undefined && hashKey === undefined ? MeshletPicker.#ctx : { ...MeshletPicker.#ctx, revision, hashKey }
      try {
        e = dest.balancer.pick(ctx, this.#usable)
      } catch {
        e = undefined // no endpoint in the core's view: any connected subchannel serves
      }
    }
    const leaf = e === undefined ? undefined : this.#ready.get(keyOfState(e))
    if (leaf === undefined || e === undefined || dest === undefined) {
      return this.#leaves[(Math.random() * this.#leaves.length) | 0]!.getPicker().pick(args)
    }
    const result = leaf.getPicker().pick(args)
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result
    return new Attempt(result, dest.balancer, e)
  }

  /** An attempt of the client stack: its endpoint's subchannel, a wait while it connects, or UNAVAILABLE. */
  #pickPinned(args: PickArgs, e: EndpointState): PickResult {
    const key = keyOfState(e)
    const leaf = this.#ready.get(key)
    if (leaf === undefined && this.#connecting.has(key)) return { pickResultType: experimental.PickResultType.QUEUE, subchannel: null, status: null, onCallStarted: null, onCallEnded: null }
    pinnedEndpoint(args.metadata, true)
    if (leaf === undefined) {
      const details = `meshlet: ${e.url} is not connected (the mesh retries the call on another endpoint when it may)`
      return { pickResultType: experimental.PickResultType.DROP, subchannel: null, status: { code: Status.UNAVAILABLE, details, metadata: new Metadata() }, onCallStarted: null, onCallEnded: null }
    }
    return leaf.getPicker().pick(args)
  }
}

/** A call balanced here (made without the mesh's interceptor): in-flight, latency, outcome and load report go to the balancer. */
class Attempt implements PickResult {
  readonly pickResultType: PickResult['pickResultType']
  readonly subchannel: PickResult['subchannel']
  readonly status: PickResult['status']
  readonly #started: PickResult['onCallStarted']
  readonly #ended: PickResult['onCallEnded']
  readonly #balancer: Destination['balancer']
  readonly #endpoint: EndpointState
  #t0 = 0

  constructor(result: PickResult, balancer: Destination['balancer'], endpoint: EndpointState) {
    this.pickResultType = result.pickResultType
    this.subchannel = result.subchannel
    this.status = result.status
    this.#started = result.onCallStarted
    this.#ended = result.onCallEnded
    this.#balancer = balancer
    this.#endpoint = endpoint
  }

  readonly onCallStarted = (): void => {
    this.#endpoint.inflight++
    this.#t0 = performance.now()
    this.#started?.()
  }

  readonly onCallEnded = (code: Status, details: string, metadata: Metadata): void => {
    const e = this.#endpoint
    e.inflight--
    this.#balancer.record(e, classifyStatus(code), performance.now() - this.#t0)
    const load = parseLoadHeader(metadata?.get(LOAD_HEADER)[0] as string | undefined)
    if (load !== undefined) this.#balancer.reportLoad(e, load)
    this.#ended?.(code, details, metadata)
  }
}

export class MeshletLoadBalancer implements experimental.LoadBalancer {
  readonly #helper: experimental.ChannelControlHelper
  readonly #childHelper: experimental.ChannelControlHelper
  #leaves = new Map<string, Leaf>()
  #dest: Destination | undefined
  #paused = false
  #state: ConnectivityState = ConnectivityState.IDLE
  #lastError: string | null = null

  constructor(helper: experimental.ChannelControlHelper) {
    this.#helper = helper
    this.#childHelper = experimental.createChildChannelControlHelper(helper, {
      updateState: (_state, _picker, errorMessage) => {
        if (errorMessage) this.#lastError = errorMessage
        this.#publish()
      },
    })
  }

  updateAddressList(endpoints: experimental.StatusOr<Endpoint[]>, config: experimental.TypedLoadBalancingConfig, options: ChannelOptions, note: string): boolean {
    if (!(config instanceof MeshletLoadBalancingConfig)) return false
    if (!endpoints.ok) {
      if (this.#leaves.size === 0) this.#setState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker(endpoints.error), endpoints.error.details ?? note)
      return true
    }
    const dest = options[DESTINATION_ARG] as Destination | undefined
    if (this.#dest !== undefined && dest !== this.#dest) setConnectivity(this.#dest, this, undefined)
    this.#dest = dest
    const next = new Map<string, Leaf>()
    const fresh: Leaf[] = []
    this.#paused = true
    for (const endpoint of endpoints.value) {
      const key = keyOfEndpoint(endpoint)
      if (next.has(key)) continue
      let leaf = this.#leaves.get(key)
      if (leaf === undefined) fresh.push((leaf = new experimental.LeafLoadBalancer(endpoint, this.#childHelper, options, note)))
      next.set(key, leaf)
    }
    for (const [key, leaf] of this.#leaves) if (!next.has(key)) leaf.destroy()
    this.#leaves = next
    for (const leaf of fresh) leaf.startConnecting()
    this.#paused = false
    if (next.size === 0) {
      const details = `meshlet: no endpoint for this destination yet (${note})`
      this.#setState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details }), details)
    } else this.#publish()
    return true
  }

  /** READY as soon as one leaf is; every leaf is kept connected so that picks have a choice. */
  #publish(): void {
    if (this.#paused || this.#leaves.size === 0) return
    const ready = new Map<string, Leaf>()
    const connecting = new Set<string>()
    for (const [key, leaf] of this.#leaves) {
      const s = leaf.getConnectivityState()
      if (s === ConnectivityState.READY) ready.set(key, leaf)
      else if (s === ConnectivityState.CONNECTING || s === ConnectivityState.IDLE) connecting.add(key)
    }
    const allReady = ready.size === this.#leaves.size
    if (this.#dest !== undefined) setConnectivity(this.#dest, this, { ready: new Set(ready.keys()), allReady })
    if (ready.size > 0) this.#setState(ConnectivityState.READY, new MeshletPicker(this.#dest, ready, connecting, allReady), null)
    else if (connecting.size > 0) this.#setState(ConnectivityState.CONNECTING, new experimental.QueuePicker(this), null)
    else {
      const details = `meshlet: no connection to any endpoint. Last error: ${this.#lastError}`
      this.#setState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details }), details)
    }
    for (const leaf of this.#leaves.values()) if (leaf.getConnectivityState() === ConnectivityState.IDLE) leaf.exitIdle()
  }

  #setState(state: ConnectivityState, picker: Picker, error: string | null): void {
    if (this.#state === ConnectivityState.READY && state !== ConnectivityState.READY) this.#helper.requestReresolution()
    this.#state = state
    this.#helper.updateState(state, picker, error)
  }

  exitIdle(): void {
    for (const leaf of this.#leaves.values()) leaf.exitIdle()
  }
  resetBackoff(): void {
    // Leaves reset their own backoff when asked to connect.
  }
  destroy(): void {
    if (this.#dest !== undefined) setConnectivity(this.#dest, this, undefined)
    for (const leaf of this.#leaves.values()) leaf.destroy()
    this.#leaves.clear()
  }
  getTypeName(): string {
    return LB_POLICY_NAME
  }
}
