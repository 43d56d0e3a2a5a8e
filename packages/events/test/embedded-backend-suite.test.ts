/** The shared behaviour suite (broker-backend-suite.ts) against the embedded backend, fsync on. */
import { createEmbeddedBackend } from '../src/index.js'
import type { BrokerBackend } from '../src/broker/broker-backend.js'
import { describeBrokerBackend } from './broker-backend-suite.js'

// A restart is close and reopen over the same directory; small segments so rotation is in play.
describeBrokerBackend('embedded', async (dir) => {
  const open = (): Promise<BrokerBackend> => createEmbeddedBackend({ dir, segmentBytes: 64 * 1024 })
  let backend = await open()
  return {
    backend,
    restart: async () => {
      await backend.close()
      backend = await open()
      return backend
    },
    cleanup: () => backend.close(),
  }
})
