import { describe, expect, it } from 'vitest'
import { status as Status } from '@grpc/grpc-js'
import { GrpcStatus } from '@meshlet/core'
import { isIdempotentPath } from './client-interceptors.js'
import { statusForHttp } from './routing.js'
import { serviceConfigFor } from './service-config.js'

describe('serviceConfigFor', () => {
  it('gives the meshlet LB policy and no grpc-js retries: the mesh\'s client stack retries, with one budget', () => {
    const c = serviceConfigFor('payments')
    expect(c.loadBalancingConfig).toEqual([{ meshlet: { service: 'payments' } }])
    expect(c.methodConfig).toEqual([])
    expect(c.retryThrottling).toBeUndefined()
  })
})

describe('isIdempotentPath', () => {
  it('matches by method path or by service, with or without the leading slash', () => {
    expect(isIdempotentPath(['/shop.Payments/Get'], '/shop.Payments/Get')).toBe(true)
    expect(isIdempotentPath(['shop.Payments/Get'], '/shop.Payments/Get')).toBe(true)
    expect(isIdempotentPath(['shop.Payments'], '/shop.Payments/Charge')).toBe(true)
    expect(isIdempotentPath(['shop.Payments'], '/shop.PaymentsAdmin/Charge')).toBe(false)
    expect(isIdempotentPath([], '/shop.Payments/Get')).toBe(false)
  })
})

describe('statusForHttp', () => {
  it('maps HTTP statuses through core\'s registry: as grpc/grpc\'s table, except 400, 404, 500 and 504, whose meaning meshlet knows', () => {
    expect([400, 401, 403, 404, 429, 499, 500, 502, 503, 504, 501, 200].map(statusForHttp)).toEqual([
      Status.INVALID_ARGUMENT, Status.UNAUTHENTICATED, Status.PERMISSION_DENIED, Status.NOT_FOUND, Status.UNAVAILABLE, Status.CANCELLED, Status.INTERNAL, Status.UNAVAILABLE, Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.UNKNOWN, Status.OK,
    ])
  })

  it('uses grpc-js\'s numbers: core\'s GrpcStatus is grpc-js\'s status, name for name', () => {
    const grpcJs = Object.fromEntries(Object.entries(Status).filter(([k]) => Number.isNaN(Number(k))))
    expect(GrpcStatus).toEqual(grpcJs)
  })
})
