import { defineConfig } from 'vitest/config'

// Tests run against each package's TypeScript source (the "source" export condition), so no build is needed first.
// Vite's default server conditions after ours (vitest/config does not re-export them).
const conditions = ['source', 'node', 'development|production']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    setupFiles: [new URL('./vitest.setup.ts', import.meta.url).pathname],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'core', root: 'packages/core', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] } },
      { extends: true, test: { name: 'http', root: 'packages/http', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] } },
      { extends: true, test: { name: 'grpc', root: 'packages/grpc', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] } },
      { extends: true, test: { name: 'events', root: 'packages/events', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] } },
      // Crash tests run the compiled CLI in child processes: globalSetup builds it first (incrementally).
      { extends: true, test: { name: 'control', root: 'packages/control', include: ['src/**/*.test.ts', 'test/**/*.test.ts'], globalSetup: ['test/build-once.ts'] } },
    ],
  },
})
