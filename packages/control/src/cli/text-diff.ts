/** A line diff (longest common subsequence) for `meshlet apply`, printed like `diff -u` without headers. */

const MAX_CELLS = 4_000_000

export function lineDiff(before: string, after: string, context = 3): string {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n')
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n')
  const ops: { op: ' ' | '-' | '+'; line: string }[] = []
  if (a.length * b.length > MAX_CELLS) {
    for (const line of a) ops.push({ op: '-', line })
    for (const line of b) ops.push({ op: '+', line })
  } else {
    // lcs[i][j]: length of the LCS of a[i..] and b[j..]
    const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1))
    for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!)
    let i = 0
    let j = 0
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) {
        ops.push({ op: ' ', line: a[i++]! })
        j++
      } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push({ op: '-', line: a[i++]! })
      else ops.push({ op: '+', line: b[j++]! })
    }
  }
  // Keep changed lines and `context` lines around them.
  const keep = ops.map(() => false)
  ops.forEach((o, k) => {
    if (o.op !== ' ') for (let c = Math.max(0, k - context); c <= Math.min(ops.length - 1, k + context); c++) keep[c] = true
  })
  const out: string[] = []
  let skipped = false
  ops.forEach((o, k) => {
    if (keep[k]) {
      out.push(`${o.op} ${o.line}`)
      skipped = false
    } else if (!skipped) {
      if (out.length > 0) out.push('  ...')
      skipped = true
    }
  })
  return out.join('\n')
}
