import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import noImportCycle from './eslint-rules/no-import-cycle.js'

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/results.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', Buffer: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', performance: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }],
      eqeqeq: ['error', 'smart'],
    },
  },
  // No import cycles, type-only ones included (see eslint-rules/no-import-cycle.js for why not import-x's no-cycle).
  { plugins: { meshlet: { rules: { 'no-import-cycle': noImportCycle } } }, rules: { 'meshlet/no-import-cycle': 'error' } },
  { files: ['examples/**', 'bench/**', '**/test/fixtures/**', 'packages/control/src/cli/**'], rules: { 'no-console': 'off' } },
)
