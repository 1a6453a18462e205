/** Renderer build: renderer/ -> dist-renderer/ (served by web mode, loaded by Electron). */
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('./renderer', import.meta.url)),
  // Relative asset URLs so the same build loads over http:// (web mode) and from a file/app protocol (Electron).
  base: './',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('./dist-renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // No inline scripts or styles: the CSP forbids them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    // One bundle (React, React Flow, zod) loaded from disk or localhost: splitting buys nothing.
    chunkSizeWarningLimit: 1200,
  },
});
