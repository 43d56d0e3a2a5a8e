/** Parses durations as written in config: `250ms`, `2s`, `1.5m`, `1h`, `1m30s`, or a number of milliseconds. */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y
const MAX_DURATION_TEXT = 64

/** Returns milliseconds, or undefined when `value` is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_DURATION_TEXT) return undefined
  let total = 0
  PART.lastIndex = 0
  while (PART.lastIndex < value.length) {
    const start = PART.lastIndex
    const m = PART.exec(value)
    if (m === null || m.index !== start) return undefined
    total += Number(m[1]) * UNIT_MS[m[2] as string]!
  }
  return Number.isFinite(total) ? total : undefined
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'none'
  if (ms % 1000 === 0 && ms >= 1000) return `${ms / 1000}s`
  return `${Math.round(ms)}ms`
}
