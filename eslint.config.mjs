// Lint: typescript-eslint's recommended rules, and a cap on cyclomatic complexity so that
// functions stay readable; formatting is prettier's (npm run format), not the linter's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.gpu-bundle/', 'scratch/', 'bin/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      complexity: ['error', 20],
      '@typescript-eslint/no-require-imports': 'off', // optional peer dependencies and dawn.node are loaded with require
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['scripts/**/*.js'],
    languageOptions: { globals: { require: 'readonly', process: 'readonly', __dirname: 'readonly', console: 'readonly', Buffer: 'readonly' }, sourceType: 'commonjs' },
  },
);
