/**
 * Applying engine settings from the editor (the Settings dialog, the models banner's "Use demo
 * models"): the host checks and saves them, then what depends on them is asked for again — the
 * models lists, the host info (demo or not), the models folder report and the gallery (another
 * output folder lists other images).
 */
import type { EngineSettings } from '../engine/api.js';
import { refreshGallery, refreshModelsReport } from './gallery.js';
import type { Host } from './host.js';
import type { EditorStore } from './store/index.js';

/** Sends the change; throws the host's sentence when it is refused (a folder that does not exist, ...). */
export async function applySettings(store: EditorStore, host: Host, change: Partial<EngineSettings>): Promise<EngineSettings> {
  const before = store.getState().settings;
  const s = await host.call('updateSettings', change);
  const [models, hostInfo] = await Promise.all([host.call('listModels', {}), host.call('hostInfo', {})]);
  store.setState({ settings: s, models, hostInfo });
  await refreshModelsReport(store, host);
  if (before?.outputDir !== s.outputDir) await refreshGallery(store, host);
  return s;
}
