/**
 * The request path as functions ("your server as a function", Finagle; tower): a Service answers a
 * request, a Filter wraps a Service. This folder is the generic machinery only: it knows no
 * endpoint, no policy and no transport, and imports nothing from the rest of core. The client
 * stack (client/) and the server stack (server/) specialise it with their own context.
 */

export type StackService<Req, Res, Ctx> = (req: Req, ctx: Ctx) => Promise<Res>
export type StackFilter<Req, Res, Ctx> = (req: Req, ctx: Ctx, next: StackService<Req, Res, Ctx>) => Promise<Res>

/** A filter with a role name, so a stack can be inspected and a role replaced. */
export interface StackEntry<Req, Res, Ctx> {
  readonly role: string
  readonly filter: StackFilter<Req, Res, Ctx>
}

/** Builds one Service from filters listed outermost first around `terminal`. */
export function compose<Req, Res, Ctx>(entries: readonly StackEntry<Req, Res, Ctx>[], terminal: StackService<Req, Res, Ctx>): StackService<Req, Res, Ctx> {
  let service = terminal
  for (let i = entries.length - 1; i >= 0; i--) {
    const filter = entries[i]!.filter
    const next = service
    service = (req, ctx) => filter(req, ctx, next)
  }
  return service
}
