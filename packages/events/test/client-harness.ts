/**
 * Shared setup for the event client's integration tests: a real control endpoint (with its embedded
 * broker) on loopback, meshes that follow it, receivers served on real node:http, Express and
 * Fastify servers behind the mesh's server stack, and an inbox that tests await instead of sleeping.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from 'express'
import Fastify from 'fastify'
import { vi } from 'vitest'
import { createMesh, type Mesh, type MeshOptions } from '@meshlet/core'
import { meshHandler } from '@meshlet/http'
import { meshlet as expressMeshlet } from '@meshlet/http/express'
import { meshlet as fastifyMeshlet } from '@meshlet/http/fastify'
import { silentLogger, startControl, type ControlOptions, type ControlServer } from '@meshlet/control'
import type { CloudEvent } from 'cloudevents'
import { events, type EventsOptions, type MeshEvents } from '../src/index.js'

export const ADMIN = 'admin-token-for-event-tests'
export const JOIN = 'join-token-for-event-tests'

export type ServerKind = 'node:http' | 'express' | 'fastify'
export const SERVER_KINDS: readonly ServerKind[] = ['node:http', 'express', 'fastify']

/** Undoes what a test set up, last first. */
export class Teardown {
  readonly #steps: (() => unknown)[] = []
  add(step: () => unknown): void {
    this.#steps.push(step)
  }
  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step()
  }
}

export async function tempDir(t: Teardown, prefix = 'meshlet-events-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.add(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export async function startTestControl(t: Teardown, options: Partial<ControlOptions> & { dataDir: string }): Promise<ControlServer> {
  const control = await startControl({ port: 0, adminToken: ADMIN, joinToken: JOIN, log: silentLogger, sweepInterval: 50, ...options })
  t.add(() => control.close())
  return control
}

export async function meshOf(t: Teardown, control: { url: string } | string, service: string, options: Partial<MeshOptions> = {}): Promise<Mesh> {
  const url = typeof control === 'string' ? control : control.url
  const mesh = await createMesh({ service, namespace: 'shop', control: url, token: JOIN, shutdownSignals: false, drain: { delay: 0, timeout: 1000 }, heartbeatInterval: 100, ...options })
  t.add(() => mesh.close())
  return mesh
}

/** Events that a handler put in, awaited by count. */
export class Inbox {
  readonly events: CloudEvent<unknown>[] = []
  #waiters: { test: (events: readonly CloudEvent<unknown>[]) => boolean; resolve: () => void }[] = []

  add(event: CloudEvent<unknown>): void {
    this.events.push(event)
    this.#waiters = this.#waiters.filter((w) => (w.test(this.events) ? (w.resolve(), false) : true))
  }

  /** Resolves once at least `n` events are in. */
  count(n: number): Promise<void> {
    return this.until((events) => events.length >= n)
  }

  /** Resolves once `test` holds for the events in. */
  until(test: (events: readonly CloudEvent<unknown>[]) => boolean): Promise<void> {
    if (test(this.events)) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push({ test, resolve }))
  }

  /** The events of `type`, the first delivery of each (source, id) only: duplicates are allowed by at-least-once. */
  distinct(type: string): CloudEvent<unknown>[] {
    const seen = new Set<string>()
    return this.events.filter((e) => e.type === type && !seen.has(`${e.source}\0${e.id}`) && (seen.add(`${e.source}\0${e.id}`), true))
  }
}

export interface Receiving {
  ev: MeshEvents
  server: Server
  origin: string
}

/**
 * Serves `ev`'s receivers on `kind` behind the mesh's server stack, on 127.0.0.1:0: node:http
 * through meshHandler, Express with meshlet(mesh) and a JSON body parser mounted after the
 * receivers plus a route of its own (`GET /hello`), Fastify with the meshlet plugin and `ev.fastify`.
 * A controlled mesh registers the server once it listens.
 */
export async function serveReceivers(t: Teardown, kind: ServerKind, mesh: Mesh, declare: (ev: MeshEvents) => void, options: EventsOptions = {}): Promise<Receiving> {
  const ev = events(mesh, options)
  t.add(() => ev.close())
  declare(ev)
  let server: Server
  if (kind === 'fastify') {
    const app = Fastify()
    await app.register(fastifyMeshlet, { mesh })
    await app.register(ev.fastify)
    app.get('/hello', async () => 'hello')
    await app.listen({ port: 0, host: '127.0.0.1' })
    server = app.server
    t.add(() => app.close())
  } else {
    if (kind === 'express') {
      const app = express()
      app.use(expressMeshlet(mesh))
      app.use(ev.handler())
      app.use(express.json())
      app.get('/hello', (_req, res) => void res.send('hello'))
      server = createServer(app)
    } else {
      server = createServer(meshHandler(mesh, ev.handler()))
    }
    mesh.attachServer(server)
    mesh.registerOnListen(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.add(() => new Promise((resolve) => (server.closeAllConnections(), server.close(resolve))))
  }
  return { ev, server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** Resolves once the broker runs trigger `name` of namespace `shop` with its consumer open (polls its status; no fixed wait). */
export async function triggerReady(control: ControlServer, name: string, namespace = 'shop'): Promise<void> {
  await vi.waitFor(
    async () => {
      const res = await fetch(`${control.url}/v1/triggers/${namespace}/${name}/status`, { headers: { authorization: `Bearer ${JOIN}` } })
      const status = (await res.json()) as { ready?: boolean }
      if (status.ready !== true) throw new Error(`trigger ${name} not ready: ${JSON.stringify(status)}`)
    },
    { timeout: 10_000, interval: 25 },
  )
}
