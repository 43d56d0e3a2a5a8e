/**
 * A scriptable terminal service for unit tests of client filters (tower-test's `mock::pair`): the
 * test sees each request as it reaches the service, with its context, and answers it, fails it, or
 * leaves it pending, in the order it chooses. Test-only: not exported from the package, not shipped.
 */
import type { EndpointState } from '../../balance/endpoint-state.js'
import type { CallContext, Service } from '../call-context.js'

/** One request that reached the mock, and the means to settle it. */
export interface MockRequest<Req, Res> {
  readonly req: Req
  /** The live context: filters may change it later (attempt, endpoint). */
  readonly ctx: CallContext
  /** What the context said when the request arrived. */
  readonly seen: { readonly attempt: number; readonly endpoint: EndpointState | undefined; readonly deadline: number; readonly attemptDeadline: number }
  readonly settled: boolean
  respond(res: Res): void
  fail(err: unknown): void
}

export interface MockHandle<Req, Res> {
  /** Every request that reached the service, in arrival order. */
  readonly received: readonly MockRequest<Req, Res>[]
  /** The next request not yet taken by `next()`; waits for it when none has arrived. */
  next(): Promise<MockRequest<Req, Res>>
  /** Answers this and every later request at once with `answer` (a thrown error fails the request). */
  answerWith(answer: (req: Req, ctx: CallContext, n: number) => Res): void
}

export function mockService<Req, Res>(): { service: Service<Req, Res>; handle: MockHandle<Req, Res> } {
  const received: MockRequest<Req, Res>[] = []
  const untaken: MockRequest<Req, Res>[] = []
  const waiting: ((r: MockRequest<Req, Res>) => void)[] = []
  let answer: ((req: Req, ctx: CallContext, n: number) => Res) | undefined

  const service: Service<Req, Res> = (req, ctx) =>
    new Promise<Res>((resolve, reject) => {
      let settled = false
      const settle = (fn: () => void) => {
        if (settled) throw new Error('mockService: this request is already settled')
        settled = true
        fn()
      }
      const r: MockRequest<Req, Res> = {
        req,
        ctx,
        seen: { attempt: ctx.attempt, endpoint: ctx.endpoint, deadline: ctx.deadline, attemptDeadline: ctx.attemptDeadline },
        get settled() {
          return settled
        },
        respond: (res) => settle(() => resolve(res)),
        fail: (err) => settle(() => reject(err)),
      }
      received.push(r)
      if (answer !== undefined) {
        try {
          r.respond(answer(req, ctx, received.length))
        } catch (err) {
          r.fail(err)
        }
        return
      }
      const waiter = waiting.shift()
      if (waiter !== undefined) waiter(r)
      else untaken.push(r)
    })

  const handle: MockHandle<Req, Res> = {
    received,
    next: () => {
      const r = untaken.shift()
      return r !== undefined ? Promise.resolve(r) : new Promise((resolve) => waiting.push(resolve))
    },
    answerWith: (fn) => {
      answer = fn
    },
  }
  return { service, handle }
}
