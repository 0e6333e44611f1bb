// @ts-check
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'data/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly' }
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', {
        selector: "MemberExpression[object.name='process'][property.name='env']",
        message: 'Read configuration through loadConfig(env) in src/config.ts only.'
      }]
    }
  },
  {
    // examples/ are client programs, not the service: they read their own environment.
    files: ['src/server.ts', 'src/cli.ts', 'test/**', 'bench/**', 'scripts/**', 'examples/**'],
    rules: { 'no-restricted-syntax': 'off' }
  },
  {
    // The account pages' scripts run in the browser (ES modules served under a strict CSP).
    files: ['src/account-pages/assets/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' }
  },
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: globals.node }
  },
  {
    // Tests read JSON bodies loosely; the assertions are what check their shape.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' }
  }
)
