/**
 * Bearer tokens: an admin token for writes and a join token for instances. Each is taken from the
 * caller (MESHLET_TOKEN / MESHLET_JOIN_TOKEN) or from its file in the data dir, or created there on
 * first start (mode 0600) and printed once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../logger.js'

export type Role = 'admin' | 'join'

export const ADMIN_TOKEN_FILE = 'admin.token'
export const JOIN_TOKEN_FILE = 'join.token'

export async function loadOrCreateToken(dir: string, file: string, given: string | undefined, label: string, log: Logger): Promise<string> {
  if (given !== undefined && given !== '') return given
  const path = join(dir, file)
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token === '') throw new Error(`${path} is empty; delete it to have a new ${label} created, or set the token explicitly`)
    if (((await stat(path)).mode & 0o077) !== 0) log.warn(`${path} can be read by other users; run chmod 600 ${path}`)
    return token
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = `${file.startsWith('admin') ? 'mshadm' : 'mshjoin'}_${randomBytes(24).toString('base64url')}`
  await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  log.info(`created the ${label} (stored in ${path}, shown only this once): ${token}`)
  return token
}

/** Compares presented bearer tokens in constant time. */
export class TokenCheck {
  readonly #admin: Buffer
  readonly #join: Buffer

  constructor(admin: string, joinToken: string) {
    this.#admin = digest(admin)
    this.#join = digest(joinToken)
  }

  /** The role an `Authorization` header grants, or undefined. */
  roleOf(header: string | undefined): Role | undefined {
    if (header === undefined) return undefined
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (m === null) return undefined
    const d = digest(m[1]!)
    if (timingSafeEqual(d, this.#admin)) return 'admin'
    if (timingSafeEqual(d, this.#join)) return 'join'
    return undefined
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}
