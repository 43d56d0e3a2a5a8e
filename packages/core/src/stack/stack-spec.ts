/**
 * A stack as a list of named roles (Finagle's `Stack.Role`): each role is a factory that builds its
 * filter for one target from parameters (`P`), or declines (undefined: the role has nothing to do
 * there, e.g. no retry policy). Users insert, replace or remove a role by name; every change bumps
 * `version`, and whoever caches built stacks rebuilds them when it differs.
 */

export interface RoleSpec<P, F> {
  /** Stable name (`retry`, `breaker`, ...); unique within a stack. */
  readonly role: string
  /** Builds the role's filter for one target; undefined leaves the role out there. */
  make(params: P): F | undefined
}

export class StackSpec<P, F> {
  #roles: RoleSpec<P, F>[]
  #version = 0

  constructor(roles: readonly RoleSpec<P, F>[]) {
    this.#roles = [...roles]
    this.#check(this.#roles)
  }

  /** Bumped by every change. */
  get version(): number {
    return this.#version
  }

  /** Role names, outermost first. */
  roles(): string[] {
    return this.#roles.map((r) => r.role)
  }

  /** Inserts `spec` just outside (before) the role `role`. */
  insertBefore(role: string, spec: RoleSpec<P, F>): this {
    return this.#splice(this.#indexOf(role), 0, spec)
  }

  /** Inserts `spec` just inside (after) the role `role`. */
  insertAfter(role: string, spec: RoleSpec<P, F>): this {
    return this.#splice(this.#indexOf(role) + 1, 0, spec)
  }

  /** Replaces the role `role` with `spec` (which may keep the name or take another). */
  replace(role: string, spec: RoleSpec<P, F>): this {
    return this.#splice(this.#indexOf(role), 1, spec)
  }

  /** Removes the role `role`. */
  remove(role: string): this {
    return this.#splice(this.#indexOf(role), 1)
  }

  /** The filters for one target, outermost first, each with its role name. */
  build(params: P): { readonly role: string; readonly filter: F }[] {
    const out: { role: string; filter: F }[] = []
    for (const r of this.#roles) {
      const filter = r.make(params)
      if (filter !== undefined) out.push({ role: r.role, filter })
    }
    return out
  }

  #indexOf(role: string): number {
    const i = this.#roles.findIndex((r) => r.role === role)
    if (i < 0) throw new TypeError(`No role "${role}" in this stack; its roles are: ${this.roles().join(', ')}.`)
    return i
  }

  #splice(at: number, deleteCount: number, spec?: RoleSpec<P, F>): this {
    const next = [...this.#roles]
    if (spec === undefined) next.splice(at, deleteCount)
    else next.splice(at, deleteCount, spec)
    this.#check(next)
    this.#roles = next
    this.#version++
    return this
  }

  #check(roles: readonly RoleSpec<P, F>[]): void {
    const seen = new Set<string>()
    for (const r of roles) {
      if (typeof r?.role !== 'string' || r.role === '' || typeof r.make !== 'function') throw new TypeError('A stack role needs a non-empty `role` name and a `make(params)` function.')
      if (seen.has(r.role)) throw new TypeError(`The stack already has a role "${r.role}"; role names are unique (use replace() to swap one).`)
      seen.add(r.role)
    }
  }
}
