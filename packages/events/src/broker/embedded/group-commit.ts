/**
 * Group commit: callers submit items one at a time; items that arrive while a commit is running
 * (or in the same turn of the event loop) go into the next commit together, so N concurrent
 * callers cost one write and one fsync, not N. Each caller's promise settles with the commit that
 * covered its item.
 *
 * There is no timer: a commit starts as soon as the previous one ends (or on the next turn when
 * idle), so the fsync itself is the batching window. Under light load an item waits one turn;
 * under heavy load batches grow up to `maxItems` / `maxBytes` (one item larger than `maxBytes`
 * still goes alone).
 */
export interface GroupCommitOptions<T> {
  /** Stores a batch durably; throwing fails every item of that batch (and only those). */
  readonly commit: (items: readonly T[]) => Promise<void>
  readonly maxItems?: number
  readonly maxBytes?: number
  readonly sizeOf?: (item: T) => number
}

interface Waiting<T> {
  readonly item: T
  readonly size: number
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

export class GroupCommit<T> {
  readonly #commit: (items: readonly T[]) => Promise<void>
  readonly #maxItems: number
  readonly #maxBytes: number
  readonly #sizeOf: (item: T) => number
  #queue: Waiting<T>[] = []
  #running: Promise<void> | undefined
  #scheduled = false

  constructor(options: GroupCommitOptions<T>) {
    this.#commit = options.commit
    this.#maxItems = options.maxItems ?? 4096
    this.#maxBytes = options.maxBytes ?? 4 * 1024 * 1024
    this.#sizeOf = options.sizeOf ?? (() => 1)
  }

  /** Items submitted and not yet committed (or failed). */
  get pending(): number {
    return this.#queue.length
  }

  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ item, size: this.#sizeOf(item), resolve, reject })
      if (this.#running === undefined && !this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => {
          this.#scheduled = false
          this.#drain()
        })
      }
    })
  }

  /** Resolves once every item submitted before the call has been committed or failed. */
  async flushed(): Promise<void> {
    while (this.#queue.length > 0 || this.#running !== undefined) {
      if (this.#running === undefined) this.#drain()
      await this.#running
    }
  }

  /** Fails every item not yet handed to a commit. */
  failPending(err: unknown): void {
    for (const w of this.#queue.splice(0)) w.reject(err)
  }

  #drain(): void {
    if (this.#running !== undefined || this.#queue.length === 0) return
    const batch = this.#take()
    this.#running = this.#commit(batch.map((w) => w.item)).then(
      () => { for (const w of batch) w.resolve() },
      (err: unknown) => { for (const w of batch) w.reject(err) },
    ).finally(() => {
      this.#running = undefined
      this.#drain()
    })
  }

  #take(): Waiting<T>[] {
    let count = 0
    let bytes = 0
    while (count < this.#queue.length && count < this.#maxItems) {
      const size = this.#queue[count]!.size
      if (count > 0 && bytes + size > this.#maxBytes) break
      bytes += size
      count++
    }
    return this.#queue.splice(0, count)
  }
}
