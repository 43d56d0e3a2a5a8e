/**
 * The `meshlet` LB policy: one pick-first leaf per endpoint keeps a subchannel connected to each
 * (as round_robin does), and an immutable picker asks the core's balancer (P2C peak-EWMA, outlier
 * ejection, zone preference, reported load) which endpoint takes the call, among those whose
 * subchannel is READY. Each attempt's status, latency and load report are fed back to the balancer.
 */
import { Classification, LOAD_HEADER, parseLoadHeader, type CallContext, type Destination, type EndpointState } from '@meshlet/core'
import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions } from '@grpc/grpc-js'
import { classifyStatus } from './grpc-status.js'
import { DESTINATION_ARG } from './resolver-meshlet.js'
import { takeCall } from './call-registry.js'
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

const urlKeys = new WeakMap<EndpointState, string>()
function keyOfState(e: EndpointState): string {
  let k = urlKeys.get(e)
  if (k === undefined) {
    const u = new URL(e.url)
    k = `${u.hostname.replace(/^\[|\]$/g, '')}|${u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80'}`
    urlKeys.set(e, k)
  }
  return k
}

/** The core's balancer choosing among the READY leaves; immutable, replaced on every state change. */
class MeshletPicker implements Picker {
  readonly #dest: Destination | undefined
  readonly #ready: ReadonlyMap<string, Leaf>
  readonly #leaves: readonly Leaf[]
  /** Undefined while every endpoint is connected: the balancer then filters nothing. */
  readonly #usable: ((e: EndpointState) => boolean) | undefined
  /** For calls made without the mesh's interceptor (no call context): the balancer reads `tried`, `revision` and `hashKey`. */
  static readonly #ctx: CallContext = { service: '', deadline: Infinity, signal: undefined, attempt: 1, endpoint: undefined, tried: undefined, idempotent: false, revision: undefined, hashKey: undefined, perTryTimeout: Infinity, start: 0 }

  constructor(dest: Destination | undefined, ready: ReadonlyMap<string, Leaf>, allReady: boolean) {
    this.#dest = dest
    this.#ready = ready
    this.#leaves = [...ready.values()]
    this.#usable = allReady ? undefined : (e) => ready.has(keyOfState(e))
  }

  pick(args: PickArgs): PickResult {
    const dest = this.#dest
    // Taken out of this attempt's metadata (its own copy) whether or not it is used: never sent.
    const call = takeCall(args.metadata)
    if (call?.pinned !== undefined) return this.#pickPinned(args, call.ctx, call.pinned)
    let e: EndpointState | undefined
    if (dest !== undefined) {
      let ctx = call?.ctx
      if (ctx === undefined) {
        // Without the interceptor, what a pick reads comes from the metadata: the routed revision and the ring-hash key.
        const revision = textOf(args.metadata.get(ROUTE_REVISION_KEY)[0])
        const hashHeader = dest.balancer.hashHeader
        const hashKey = hashHeader === undefined ? undefined : textOf(args.metadata.get(hashHeader)[0])
        ctx = revision === undefined && hashKey === undefined ? MeshletPicker.#ctx : { ...MeshletPicker.#ctx, revision, hashKey }
      }
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
    if (call !== undefined) {
      // A retry of this call goes to an endpoint it has not tried, while there is one.
      const tried = call.ctx.tried
      if (tried === undefined) call.ctx.tried = [e]
      else if (!tried.includes(e)) tried.push(e)
    }
    const attempt = new Attempt(result, dest.balancer, e, call?.streaming === true)
    if (call !== undefined && call.ctx.perTryTimeout !== Infinity) attempt.timeOut(call.ctx.perTryTimeout, call.ctx.idempotent, dest.name)
    return attempt
  }

  /** A mirrored copy: its endpoint if connected, once; otherwise dropped (mirrors never fall back, never retry). */
  #pickPinned(args: PickArgs, ctx: CallContext, e: EndpointState): PickResult {
    const leaf = ctx.tried === undefined ? this.#ready.get(keyOfState(e)) : undefined
    if (leaf === undefined) {
      const details = ctx.tried === undefined ? 'meshlet: the shadow endpoint of a mirrored call is not connected' : 'meshlet: a mirrored call is not retried'
      return { pickResultType: experimental.PickResultType.DROP, subchannel: null, status: { code: Status.UNAVAILABLE, details, metadata: new Metadata() }, onCallStarted: null, onCallEnded: null }
    }
    ctx.tried = [e]
    return leaf.getPicker().pick(args)
  }
}

/** A picked attempt: in-flight, latency, outcome and load report go to the balancer. */
class Attempt implements PickResult {
  readonly pickResultType: PickResult['pickResultType']
  subchannel: PickResult['subchannel']
  readonly status: PickResult['status']
  readonly #started: PickResult['onCallStarted']
  readonly #ended: PickResult['onCallEnded']
  readonly #balancer: Destination['balancer']
  readonly #endpoint: EndpointState
  readonly #streaming: boolean
  #t0 = 0

  constructor(result: PickResult, balancer: Destination['balancer'], endpoint: EndpointState, streaming: boolean) {
    this.pickResultType = result.pickResultType
    this.subchannel = result.subchannel
    this.status = result.status
    this.#started = result.onCallStarted
    this.#ended = result.onCallEnded
    this.#balancer = balancer
    this.#endpoint = endpoint
    this.#streaming = streaming
  }

  readonly onCallStarted = (): void => {
    this.#endpoint.inflight++
    this.#t0 = performance.now()
    this.#started?.()
  }

  readonly onCallEnded = (code: Status, details: string, metadata: Metadata): void => {
    const e = this.#endpoint
    e.inflight--
    const cls = classifyStatus(code)
    // A stream's outcome counts, its duration is no latency sample.
    if (this.#streaming) this.#balancer.record(e, cls === Classification.Success ? Classification.Ignorable : cls, 0)
    else this.#balancer.record(e, cls, performance.now() - this.#t0)
    const load = parseLoadHeader(metadata?.get(LOAD_HEADER)[0] as string | undefined)
    if (load !== undefined) this.#balancer.reportLoad(e, load)
    this.#ended?.(code, details, metadata)
  }

  /**
   * perTryTimeout: an attempt with no response headers after `ms` is cancelled, so that grpc-js's
   * retry policy takes over: with UNAVAILABLE for an idempotent call (retried on another endpoint,
   * attempts and budget allowing), with DEADLINE_EXCEEDED for any other (never retried: the server
   * may be processing it). grpc-js gives a picker no handle on the attempt, so the subchannel it
   * hands out makes the attempt's call and keeps it.
   */
  timeOut(ms: number, idempotent: boolean, service: string): void {
    const sub = this.subchannel
    if (sub === null) return
    const code = idempotent ? Status.UNAVAILABLE : Status.DEADLINE_EXCEEDED
    const details = `meshlet: no response headers from ${this.#endpoint.url} within the perTryTimeout of ${ms}ms for "${service}"${idempotent ? '; retrying elsewhere' : '; not retried (the method is not marked idempotent)'}`
    const real = sub.getRealSubchannel()
    const timed = {
      createCall(...args: Parameters<typeof real.createCall>): ReturnType<typeof real.createCall> {
        const [metadata, host, method, listener, callId] = args
        const clock: { timer?: NodeJS.Timeout } = {}
        const stop = () => clearTimeout(clock.timer)
        const subCall = real.createCall(metadata, host, method, {
          onReceiveMetadata: (md) => (stop(), listener.onReceiveMetadata(md)),
          onReceiveMessage: (m) => listener.onReceiveMessage(m),
          onReceiveStatus: (s) => (stop(), listener.onReceiveStatus(s)),
        }, callId)
        clock.timer = setTimeout(() => subCall.cancelWithStatus(code, details), ms)
        return subCall
      },
    } as unknown as ReturnType<typeof sub.getRealSubchannel>
    // Everything else (state, credentials, address) from the picked subchannel itself.
    this.subchannel = Object.assign(Object.create(sub) as typeof sub, { getRealSubchannel: () => timed })
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
    this.#dest = options[DESTINATION_ARG] as Destination | undefined
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
    let connecting = false
    for (const [key, leaf] of this.#leaves) {
      const s = leaf.getConnectivityState()
      if (s === ConnectivityState.READY) ready.set(key, leaf)
      else if (s === ConnectivityState.CONNECTING) connecting = true
    }
    if (ready.size > 0) this.#setState(ConnectivityState.READY, new MeshletPicker(this.#dest, ready, ready.size === this.#leaves.size), null)
    else if (connecting) this.#setState(ConnectivityState.CONNECTING, new experimental.QueuePicker(this), null)
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
    for (const leaf of this.#leaves.values()) leaf.destroy()
    this.#leaves.clear()
  }
  getTypeName(): string {
    return LB_POLICY_NAME
  }
}
