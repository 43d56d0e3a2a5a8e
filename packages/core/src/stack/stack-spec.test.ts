import { describe, expect, it } from 'vitest'
import { StackSpec, type RoleSpec } from './stack-spec.js'

type Spec = RoleSpec<{ skip?: string }, string>
const role = (name: string): Spec => ({ role: name, make: (p) => (p.skip === name ? undefined : `${name}-filter`) })
const abc = () => new StackSpec([role('a'), role('b'), role('c')])

describe('StackSpec', () => {
  it('keeps roles in the order given, outermost first', () => {
    expect(abc().roles()).toEqual(['a', 'b', 'c'])
  })

  it('inserts before and after a role by name', () => {
    expect(abc().insertBefore('b', role('x')).roles()).toEqual(['a', 'x', 'b', 'c'])
    expect(abc().insertAfter('b', role('x')).roles()).toEqual(['a', 'b', 'x', 'c'])
    expect(abc().insertBefore('a', role('x')).roles()).toEqual(['x', 'a', 'b', 'c'])
    expect(abc().insertAfter('c', role('x')).roles()).toEqual(['a', 'b', 'c', 'x'])
  })

  it('replaces a role in place, under its own name or another', () => {
    const s = abc()
    const mine: Spec = { role: 'b', make: () => 'mine' }
    expect(s.replace('b', mine).roles()).toEqual(['a', 'b', 'c'])
    expect(s.build({}).find((e) => e.role === 'b')?.filter).toBe('mine')
    expect(s.replace('b', role('y')).roles()).toEqual(['a', 'y', 'c'])
  })

  it('removes a role by name', () => {
    expect(abc().remove('a').remove('c').roles()).toEqual(['b'])
  })

  it('bumps the version on every change', () => {
    const s = abc()
    const v0 = s.version
    s.insertAfter('a', role('x'))
    s.replace('x', role('y'))
    s.remove('y')
    expect(s.version).toBe(v0 + 3)
  })

  it('refuses an unknown role with a TypeError listing the roles, and changes nothing', () => {
    const s = abc()
    for (const change of [() => s.insertBefore('retry', role('x')), () => s.insertAfter('retry', role('x')), () => s.replace('retry', role('x')), () => s.remove('retry')]) {
      expect(change).toThrow(TypeError)
      expect(change).toThrow('No role "retry" in this stack; its roles are: a, b, c.')
    }
    expect(s.roles()).toEqual(['a', 'b', 'c'])
    expect(s.version).toBe(0)
  })

  it('refuses a duplicate name with a TypeError, and changes nothing', () => {
    const s = abc()
    expect(() => s.insertAfter('a', role('c'))).toThrow(new TypeError('The stack already has a role "c"; role names are unique (use replace() to swap one).'))
    expect(() => s.replace('a', role('b'))).toThrow(TypeError)
    expect(() => new StackSpec([role('a'), role('a')])).toThrow(TypeError)
    expect(s.roles()).toEqual(['a', 'b', 'c'])
    expect(s.version).toBe(0)
  })

  it('refuses a role without a name or a make function', () => {
    const s = abc()
    expect(() => s.insertAfter('a', { role: '', make: () => 'x' })).toThrow('A stack role needs a non-empty `role` name and a `make(params)` function.')
    expect(() => s.insertAfter('a', { role: 'x' } as unknown as Spec)).toThrow(TypeError)
  })

  it('builds filters with their role names, leaving out roles that decline', () => {
    expect(abc().build({ skip: 'b' })).toEqual([
      { role: 'a', filter: 'a-filter' },
      { role: 'c', filter: 'c-filter' },
    ])
  })

  it('does not share its role list with the array it was given', () => {
    const roles = [role('a')]
    const s = new StackSpec(roles)
    roles.push(role('b'))
    expect(s.roles()).toEqual(['a'])
  })
})
