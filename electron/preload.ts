/**
 * Preload (sandboxed, bundled to CommonJS by electron/build.ts with only `electron` external):
 * exposes the bridge as `window.ipaStudio`; renderer/host.ts picks it up as its BridgeHost.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { createBridge } from './bridge.js';

contextBridge.exposeInMainWorld(
  'ipaStudio',
  createBridge(ipcRenderer, () => document.activeElement),
);
