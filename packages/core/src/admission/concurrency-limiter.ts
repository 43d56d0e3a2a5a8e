/**
 * A concurrency limit with a bounded FIFO queue (Knative's containerConcurrency plus the
 * queue-proxy's breaker queue). Contract: at most `limit` permits are out at any time; queued
 * requests get a permit strictly in arrival order; a queued request leaves without a permit when
 * its queue timeout or its own deadline comes first, when the limiter drains, or when cancelled.
 */

export type QueueExit = 'queue_timeout' | 'deadline' | 'draining'

export interface QueueWaiter {
  /** The request holds a permit now; it must call `release()` once when it ends. */
  grant(waitedMs: number): void
  /** The request left the queue without a permit; it must not run. */
  expire(why: QueueExit, waitedMs: number): void
}

/** A place in the queue; pass it to `cancel()` when the request goes away while waiting. */
export interface QueueEntry {
  readonly waiter: QueueWaiter
  readonly enqueuedAt: number
  readonly deadline: number
  timer: NodeJS.Timeout | undefined
  done: boolean
}

export class ConcurrencyLimiter {
  #limit: number
  readonly queueLimit: number
  readonly queueTimeout: number
  #inflight = 0
  // FIFO as an array with a moving head; cancelled entries stay as tombstones until reached.
  #queue: QueueEntry[] = []
  #head = 0
  #queued = 0
  #pumping = false

  constructor(limit: number, queueLimit: number, queueTimeout: number) {
    this.#limit = limit
    this.queueLimit = queueLimit
    this.queueTimeout = queueTimeout
  }

  get limit(): number {
    return this.#limit
  }

  /** Permits out now. */
  get inflight(): number {
    return this.#inflight
  }

  /** Requests waiting now. */
  get queued(): number {
    return this.#queued
  }

  /** Takes a permit if one is free and nobody waits (waiting requests go first). */
  tryAcquire(): boolean {
    if (this.#inflight >= this.#limit || this.#queued > 0) return false
    this.#inflight++
    return true
  }

  /**
   * Queues a request that found no free permit; undefined when the queue is full. The waiter hears
   * `grant` or `expire` exactly once, never synchronously from this call.
   */
  enqueue(deadline: number, waiter: QueueWaiter): QueueEntry | undefined {
    if (this.#queued >= this.queueLimit) return undefined
    const now = Date.now()
    const entry: QueueEntry = { waiter, enqueuedAt: now, deadline, timer: undefined, done: false }
    // One timer for whichever comes first: the queue timeout or the request's own deadline.
    const byDeadline = deadline - now <= this.queueTimeout
    entry.timer = setTimeout(() => this.#expire(entry, byDeadline ? 'deadline' : 'queue_timeout'), byDeadline ? Math.max(0, deadline - now) : this.queueTimeout)
    this.#queue.push(entry)
    this.#queued++
    // A permit may have been freed while nobody waited (tryAcquire refused because others waited
    // and they have since left): hand it out now, but never synchronously to the caller.
    if (this.#inflight < this.#limit) queueMicrotask(() => this.#pump())
    return entry
  }

  /** Removes a waiting request (its client went away); a no-op once it was granted or expired. */
  cancel(entry: QueueEntry): void {
    if (entry.done) return
    this.#leave(entry)
  }

  /** Returns a permit and hands it to the first waiting request. */
  release(): void {
    this.#inflight--
    this.#pump()
  }

  /** Changes the limit (adaptive concurrency); a higher limit lets waiting requests in at once. */
  setLimit(limit: number): void {
    this.#limit = Math.max(1, Math.floor(limit))
    this.#pump()
  }

  /** Empties the queue: every waiting request expires with `draining`. */
  drain(): void {
    for (let e = this.#shift(); e !== undefined; e = this.#shift()) {
      this.#leave(e)
      e.waiter.expire('draining', Date.now() - e.enqueuedAt)
    }
  }

  #expire(entry: QueueEntry, why: QueueExit): void {
    if (entry.done) return
    this.#leave(entry)
    entry.waiter.expire(why, Date.now() - entry.enqueuedAt)
  }

  #leave(entry: QueueEntry): void {
    entry.done = true
    clearTimeout(entry.timer)
    this.#queued--
  }

  /** The oldest live entry, taken off the queue; undefined when none waits. */
  #shift(): QueueEntry | undefined {
    while (this.#head < this.#queue.length) {
      const e = this.#queue[this.#head++]!
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head)
        this.#head = 0
      }
      if (!e.done) return e
    }
    this.#queue.length = 0
    this.#head = 0
    return undefined
  }

  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#inflight < this.#limit && this.#queued > 0) {
        const e = this.#shift()
        if (e === undefined) break
        this.#leave(e)
        this.#inflight++
        e.waiter.grant(Date.now() - e.enqueuedAt)
      }
    } finally {
      this.#pumping = false
    }
  }
}
