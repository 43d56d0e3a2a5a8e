/** `Route`: per-request routing between revisions of one service (Istio VirtualService, Knative traffic). */
import { checkRouteRules, routeSpecSchema, type RouteSpec } from '../routing/route-spec.js'
import { defineKind, type Resource } from './resource.js'

export type RouteResource = Resource<RouteSpec>

export const routeKind = defineKind<RouteSpec>({
  kind: 'Route',
  plural: 'routes',
  aliases: ['route', 'rt'],
  description: 'Ordered rules that match requests to one service and split them by weight across its revisions, with per-rule timeout and fault injection.',
  spec: routeSpecSchema,
  crossCheck: (spec, issues) => checkRouteRules(spec.rules, 'spec.rules', issues),
})
