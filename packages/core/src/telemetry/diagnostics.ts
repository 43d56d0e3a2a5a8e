/**
 * Lifecycle events on node:diagnostics_channel, named `meshlet:*`. Publishing is skipped when no one
 * subscribes, so they cost nothing by default.
 */
import { channel } from 'node:diagnostics_channel'

export const channels = {
  endpointEjected: channel('meshlet:endpoint:ejected'),
  endpointRestored: channel('meshlet:endpoint:restored'),
  endpointsChanged: channel('meshlet:endpoints:changed'),
  breakerState: channel('meshlet:breaker:state'),
  retry: channel('meshlet:retry'),
  discoveryError: channel('meshlet:discovery:error'),
  drain: channel('meshlet:drain'),
  configRejected: channel('meshlet:config:rejected'),
  configApplied: channel('meshlet:config:applied'),
  controlError: channel('meshlet:control:error'),
  faultInjected: channel('meshlet:fault:injected'),
} as const

export function publish(ch: (typeof channels)[keyof typeof channels], message: () => object): void {
  if (ch.hasSubscribers) ch.publish(message())
}
