import { describe, expect, it } from 'vitest'
import { GroupCommit } from './group-commit.js'

describe('GroupCommit', () => {
  it('commits items submitted together, and those that arrive during a commit, as batches', async () => {
    const batches: number[][] = []
    let release: () => void = () => {}
    const group = new GroupCommit<number>({
      commit: async (items) => {
        batches.push([...items])
        if (batches.length === 1) await new Promise<void>((r) => (release = r))
      },
    })
    const first = [1, 2, 3].map((i) => group.submit(i))
    // Let the first commit start, then submit more while it runs.
    await new Promise((r) => setImmediate(r))
    const second = [4, 5].map((i) => group.submit(i))
    expect(batches).toEqual([[1, 2, 3]])
    release()
    await Promise.all([...first, ...second])
    expect(batches).toEqual([[1, 2, 3], [4, 5]])
  })

  it('fails only the items of the batch whose commit failed', async () => {
    let calls = 0
    const group = new GroupCommit<string>({
      commit: async () => {
        if (++calls === 1) throw new Error('disk full')
      },
    })
    const failed = group.submit('a')
    await expect(failed).rejects.toThrow('disk full')
    await expect(group.submit('b')).resolves.toBeUndefined()
  })

  it('caps a batch at maxItems and maxBytes, but lets one oversized item through alone', async () => {
    const batches: string[][] = []
    const group = new GroupCommit<string>({ commit: async (items) => void batches.push([...items]), maxItems: 2, maxBytes: 10, sizeOf: (s) => s.length })
    await Promise.all(['aaaa', 'bbbb', 'cccc', 'x'.repeat(30), 'dd'].map((s) => group.submit(s)))
    expect(batches).toEqual([['aaaa', 'bbbb'], ['cccc'], ['x'.repeat(30)], ['dd']])
  })

  it('flushed() waits for everything submitted before it', async () => {
    const done: number[] = []
    const group = new GroupCommit<number>({ commit: async (items) => void done.push(...items) })
    void group.submit(1)
    void group.submit(2)
    await group.flushed()
    expect(done).toEqual([1, 2])
  })
})
