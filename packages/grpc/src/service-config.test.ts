import { describe, expect, it } from 'vitest'
import { status as Status } from '@grpc/grpc-js'
import { GrpcStatus, resolvePolicy } from '@meshlet/core'
import { isIdempotentPath } from './client-interceptors.js'
import { statusForHttp } from './routing.js'
import { serviceConfigFor } from './service-config.js'

describe('serviceConfigFor', () => {
  it('maps the default policy to a retryPolicy on UNAVAILABLE, throttling from the budget, and the meshlet LB', () => {
    const c = serviceConfigFor('payments', resolvePolicy(), [])
    expect(c.loadBalancingConfig).toEqual([{ meshlet: { service: 'payments' } }])
    expect(c.methodConfig).toEqual([{ name: [{}], retryPolicy: { maxAttempts: 3, initialBackoff: '0.025s', maxBackoff: '0.25s', backoffMultiplier: 2, retryableStatusCodes: [Status.UNAVAILABLE] } }])
    expect(c.retryThrottling).toEqual({ maxTokens: 100, tokenRatio: 0.2 })
  })

  it('gives idempotent methods and services the wider codes, never DEADLINE_EXCEEDED', () => {
    const c = serviceConfigFor('payments', resolvePolicy(), ['/shop.Payments/Get', 'shop.Catalog'])
    expect(c.methodConfig[0]!.name).toEqual([{ service: 'shop.Payments', method: 'Get' }, { service: 'shop.Catalog' }])
    const codes = c.methodConfig[0]!.retryPolicy!.retryableStatusCodes
    expect(codes).toEqual([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.INTERNAL, Status.UNKNOWN])
    expect(codes).not.toContain(Status.DEADLINE_EXCEEDED)
    expect(c.methodConfig[1]!.name).toEqual([{}])
  })

  it('caps attempts at grpc-js\'s 5, and leaves retries out when the policy has none', () => {
    expect(serviceConfigFor('p', resolvePolicy(undefined, { retries: { attempts: 9 } }), []).methodConfig[0]!.retryPolicy!.maxAttempts).toBe(5)
    const off = serviceConfigFor('p', resolvePolicy(undefined, { retries: false }), ['/a.B/C'])
    expect(off.methodConfig).toEqual([])
    expect(off.retryThrottling).toBeUndefined()
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
