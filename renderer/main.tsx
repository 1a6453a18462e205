/** renderer/: the editor (React, React Flow, a zustand store) — components/, store/, graph and layout; this entry mounts it, host.ts picks the host (web socket or Electron bridge). */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { App } from './components/App.js';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
