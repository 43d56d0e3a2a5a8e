/** The one behaviour suite (broker-backend-suite.ts), run against each backend. */
import type { BrokerBackend } from '../src/broker/broker-backend.js'
import { createEmbeddedBackend } from '../src/broker/embedded/embedded-backend.js'
import { createJetStreamBackend } from '../src/broker/jetstream/jetstream-backend.js'
import { describeBrokerBackend } from './broker-backend-suite.js'
import { useNatsServer } from './nats-server.js'

const nats = useNatsServer()
let prefixes = 0

// One nats-server for the file; each test gets streams of its own (its own prefix). A restart is
// the backend's close and reopen around a clean nats-server restart (same port and store).
describeBrokerBackend('jetstream', async () => {
  const streamPrefix = `suite${++prefixes}`
  const open = (): Promise<BrokerBackend> => createJetStreamBackend({ servers: nats().url, streamPrefix })
  let backend = await open()
  return {
    backend,
    restart: async () => {
      await backend.close()
      await nats().restart()
      backend = await open()
      return backend
    },
    cleanup: () => backend.close(),
  }
})

// The embedded segment log over the suite's directory, fsync on (as in production); a restart reopens it.
describeBrokerBackend('embedded', async (dir) => {
  let backend = await createEmbeddedBackend({ dir })
  return {
    backend,
    restart: async () => {
      await backend.close()
      backend = await createEmbeddedBackend({ dir })
      return backend
    },
    cleanup: () => backend.close(),
  }
})
