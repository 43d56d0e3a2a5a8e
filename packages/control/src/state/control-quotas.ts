/**
 * The control endpoint's quotas on what clients may make it keep: instances per service and per
 * namespace, metadata per instance, and the store's size. Every refusal names the quota, what is
 * in use, and the `startControl` option and `meshlet control` flag that raise it.
 *
 * Contract: `count` is told every change as it is queued (before it is durable), with the object's
 * stored size, so checks see writes in flight too. Counts by (namespace, service) and namespace
 * cover instances; the store size covers resources and instances alike.
 */
import { ControlErrorCodes, type InstanceSpec, type StoredObject } from '@meshlet/core'
import { ControlError } from '../errors.js'

export interface ControlQuotaOptions {
  /** Instances of one service in one namespace. Default 1,000 (`--max-instances-per-service`). */
  maxInstancesPerService?: number | undefined
  /** Instances in one namespace. Default 5,000 (`--max-instances-per-namespace`). */
  maxInstancesPerNamespace?: number | undefined
  /** Metadata of one instance: its keys and values in UTF-8 bytes. Default 16 KiB (`--max-instance-metadata-bytes`). */
  maxInstanceMetadataBytes?: number | undefined
  /**
   * Resources and instances as stored (the JSON of their events). Default 128 MiB
   * (`--max-store-bytes`): half the store's largest record, so the snapshot can always be written.
   */
  maxStoreBytes?: number | undefined
}

export const DEFAULT_QUOTAS = {
  maxInstancesPerService: 1_000,
  maxInstancesPerNamespace: 5_000,
  maxInstanceMetadataBytes: 16 * 1024,
  maxStoreBytes: 128 * 1024 * 1024,
} as const satisfies Required<ControlQuotaOptions>

const INSTANCE_PREFIX = 'Instance/'

export class ControlQuotas {
  readonly limits: Readonly<Required<{ [K in keyof ControlQuotaOptions]: number }>>
  /** Stored size by key, and their sum. */
  readonly #sizes = new Map<string, number>()
  #storeBytes = 0
  /** Instances by `namespace/service` and by `namespace`. */
  readonly #perService = new Map<string, number>()
  readonly #perNamespace = new Map<string, number>()

  constructor(options: ControlQuotaOptions = {}) {
    const pick = (k: keyof ControlQuotaOptions): number => {
      const v = options[k] ?? DEFAULT_QUOTAS[k]
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${String(v)}`)
      return v
    }
    this.limits = {
      maxInstancesPerService: pick('maxInstancesPerService'),
      maxInstancesPerNamespace: pick('maxInstancesPerNamespace'),
      maxInstanceMetadataBytes: pick('maxInstanceMetadataBytes'),
      maxStoreBytes: pick('maxStoreBytes'),
    }
  }

  /** Bytes the store holds (resources and instances as stored). */
  get storeBytes(): number {
    return this.#storeBytes
  }

  /** Instances of `service` in `namespace`, or in `namespace` when `service` is undefined. */
  instances(namespace: string, service?: string): number {
    return (service === undefined ? this.#perNamespace.get(namespace) : this.#perService.get(`${namespace}/${service}`)) ?? 0
  }

  /** Refuses a registration over the metadata quota (422: it cannot succeed as sent) or over an instance count (429: it may once others leave). */
  checkRegistration(namespace: string, spec: InstanceSpec): void {
    let metadataBytes = 0
    for (const [k, v] of Object.entries(spec.metadata)) metadataBytes += Buffer.byteLength(k) + Buffer.byteLength(v)
    const maxMeta = this.limits.maxInstanceMetadataBytes
    if (metadataBytes > maxMeta) {
      const message = `is ${metadataBytes} bytes (keys and values), over the ${maxMeta}-byte quota per instance; send less metadata, or raise the quota (startControl maxInstanceMetadataBytes, meshlet control --max-instance-metadata-bytes)`
      throw new ControlError(ControlErrorCodes.CONFIG_INVALID, `invalid instance registration (1 problem):\n  - metadata: ${message}`, { issues: [{ path: 'metadata', message }] })
    }
    const perService = this.instances(namespace, spec.service)
    if (perService >= this.limits.maxInstancesPerService) {
      throw quotaExceeded(`service ${namespace}/${spec.service} has ${perService} instances, the most one service may register (quota maxInstancesPerService)`, 'startControl maxInstancesPerService, meshlet control --max-instances-per-service')
    }
    const perNamespace = this.instances(namespace)
    if (perNamespace >= this.limits.maxInstancesPerNamespace) {
      throw quotaExceeded(`namespace ${namespace} has ${perNamespace} instances, the most one namespace may register (quota maxInstancesPerNamespace)`, 'startControl maxInstancesPerNamespace, meshlet control --max-instances-per-namespace')
    }
  }

  /** Refuses a write that would take the store over maxStoreBytes; `bytes` is its stored size. */
  checkStore(key: string, bytes: number, what: string): void {
    const after = this.#storeBytes - (this.#sizes.get(key) ?? 0) + bytes
    if (after > this.limits.maxStoreBytes) {
      throw quotaExceeded(`storing ${what} (${bytes} bytes) would take the store to ${after} bytes, over its ${this.limits.maxStoreBytes}-byte quota (maxStoreBytes); delete resources or instances you do not need`, 'startControl maxStoreBytes, meshlet control --max-store-bytes')
    }
  }

  /** Records a change of `key` from `before` to `after` (undefined: absent); `bytes` is the new stored size. */
  count(key: string, before: StoredObject | undefined, after: StoredObject | undefined, bytes: number): void {
    this.#storeBytes -= this.#sizes.get(key) ?? 0
    if (after === undefined) this.#sizes.delete(key)
    else {
      this.#sizes.set(key, bytes)
      this.#storeBytes += bytes
    }
    if (!key.startsWith(INSTANCE_PREFIX) || (before === undefined) === (after === undefined)) return
    const o = (after ?? before) as StoredObject & { spec: InstanceSpec }
    const delta = after === undefined ? -1 : 1
    bump(this.#perService, `${o.metadata.namespace}/${o.spec.service}`, delta)
    bump(this.#perNamespace, o.metadata.namespace, delta)
  }
}

function bump(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

function quotaExceeded(what: string, raise: string): ControlError {
  return new ControlError(ControlErrorCodes.QUOTA_EXCEEDED, `${what}. The quota can be raised (${raise}).`)
}
