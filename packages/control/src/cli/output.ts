/** How the CLI prints: aligned tables for people, JSON or YAML for scripts. */
import { stringify } from 'yaml'

export type OutputFormat = 'table' | 'json' | 'yaml'

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 })
}

/** Several objects as JSON (a list) or YAML (documents separated by `---`). */
export function formatObjects(objects: unknown[], format: 'json' | 'yaml', single: boolean): string {
  if (format === 'json') return JSON.stringify(single ? objects[0] : objects, null, 2)
  return objects.map((o) => toYaml(o).trimEnd()).join('\n---\n')
}

/** `42s`, `5m`, `3h`, `2d` since an ISO time. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return '-'
  return shortDuration(now - Date.parse(iso))
}

export function shortDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-'
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.floor(s / 60)}m`
  if (s < 172_800) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86_400)}d`
}
