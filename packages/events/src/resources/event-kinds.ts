/** The resource kinds of @meshlet/events, for `new ResourceRegistry([...builtinKinds, ...eventKinds])`. */
import type { ResourceKind } from '@meshlet/core'
import { brokerKind } from './broker-kind.js'
import { triggerKind } from './trigger-kind.js'

export const eventKinds: readonly ResourceKind[] = [triggerKind, brokerKind]
