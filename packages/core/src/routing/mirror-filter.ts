/**
 * Role `mirror`: sends the fire-and-forget copy the route role decided on (`ctx.mirror`), after the
 * deadline and trace headers are written, so the shadow sees the call as the primary does. The copy
 * is the transport's (`protocol.mirror`): marked `meshlet-mirror`, never retried, its answer dropped.
 *
 * Reads: `ctx.mirror`. Changes: nothing. Guarantees: the caller is never delayed or failed by it.
 */
import type { ClientProtocol } from '../client/client-protocol.js'
import type { Filter } from '../client/call-context.js'

export function mirrorFilter<Req, Res>(protocol: Pick<ClientProtocol<Req, Res>, 'mirror'>): Filter<Req, Res> | undefined {
  const mirror = protocol.mirror
  if (mirror === undefined) return undefined
  return (req, ctx, next) => {
    const shadow = ctx.mirror
    if (shadow !== undefined) {
      ctx.mirror = undefined
      mirror(req, shadow)
    }
    return next(req, ctx)
  }
}
