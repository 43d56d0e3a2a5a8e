/**
 * fsyncs a directory, so that files created, renamed or deleted in it survive a power loss (POSIX
 * makes a new directory entry durable only once its directory is synced, not the file).
 */
import { open } from 'node:fs/promises'

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
