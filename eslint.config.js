// ESLint (flat config): the recommended JS + TypeScript rules, React's hook rules for the editor, and the layering
// rules of docs/design.md as import restrictions (test/architecture.test.ts checks that they fire).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Hosts and UI libraries: never imported by the networks, the engine or the node definitions. */
const UI_AND_HOSTS = ['electron', 'electron/*', 'react', 'react/*', 'react-dom', 'react-dom/*', '@xyflow/react', 'zustand', 'zustand/*'];

/** The engine/nodes files the renderer bundle may import at run time (pure: no Node, no native code). */
export const RENDERER_SHARED = [
  'engine/api',
  'engine/workflow',
  'engine/protocol',
  'engine/png-chunks',
  'engine/image-refs',
  'engine/bundle-format',
  'engine/seed',
  // Sweeps (pure): the editor counts a workflow's jobs before a run.
  'engine/sweep',
  // The ComfyUI importer / exporter (pure, engine/interop/comfyui/): the editor converts the files it opens.
  'engine/comfyui',
  'nodes/ports',
  'nodes/spec',
];

const restricted = (patterns, paths = []) => ['error', { paths, patterns }];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'dist-electron/**', 'dist-renderer/**', 'release/**', 'test-results/**', 'output/**', '.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Tests reach into private state and hand-built messages on purpose.
    files: ['**/*.test.{ts,tsx}', 'test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  {
    // The renderer's own tests run under Node (vitest) and may use Node and the engine.
    files: ['renderer/**/*.{ts,tsx}'],
    ignores: ['renderer/**/*.test.{ts,tsx}'],
    rules: {
      '@typescript-eslint/no-restricted-imports': restricted([
        {
          group: ['node:*', 'onnxruntime-node', 'onnxruntime-*', 'sharp', 'ws', ...UI_AND_HOSTS.filter((p) => p.startsWith('electron'))],
          message: 'the renderer bundle runs in a sandboxed page: no Node or native modules',
        },
        {
          group: ['**/engine/**', '**/nodes/**', '**/models/**', '**/electron/**', ...RENDERER_SHARED.map((f) => `!**/${f}.js`)],
          allowTypeImports: true,
          message: 'the renderer imports only the pure shared files (eslint.config.js RENDERER_SHARED) at run time',
        },
      ]),
    },
  },
  {
    files: ['models/**/*.ts', 'engine/**/*.ts', 'nodes/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': restricted([
        { group: UI_AND_HOSTS, message: 'models/, engine/ and nodes/ stay host-neutral: no Electron, React or editor state' },
      ]),
    },
  },
  {
    files: ['models/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': restricted([
        { group: UI_AND_HOSTS, message: 'models/, engine/ and nodes/ stay host-neutral: no Electron, React or editor state' },
        { group: ['**/engine/**', '**/nodes/**'], message: 'models/ (the networks) does not depend on engine/ or nodes/' },
      ]),
    },
  },
);
