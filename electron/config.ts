/**
 * The desktop app's start-up configuration: command-line flags (the same as web mode's, so
 * `npm start -- --models DIR --demo` means the same whichever host opens), saved settings, and
 * the providers worth offering. The user-data folder is shared with web mode
 * (IPA_STUDIO_USER_DATA or ~/.ipadapter-studio), so models, outputs and settings are the same.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EngineSettings } from '../engine/api.js';
import { EngineSettingsSchema, ProviderSchema } from '../engine/protocol.js';
import { writeFileAtomic } from './files.js';

export interface DesktopArgs {
  models?: string;
  out?: string;
  provider?: EngineSettings['provider'];
  demo: boolean;
  userData: string;
}

/**
 * Flags after the app path. Unknown arguments are ignored rather than refused: Chromium and
 * desktop launchers add their own (`--no-sandbox`, a file to open), and web mode's `--port`
 * has no meaning here.
 */
export function parseDesktopArgs(argv: string[], env: Record<string, string | undefined> = process.env): DesktopArgs {
  const args: DesktopArgs = { demo: false, userData: env.IPA_STUDIO_USER_DATA || path.join(os.homedir(), '.ipadapter-studio') };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('--') && argv[i].includes('=') ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--models': args.models = path.resolve(value()); break;
      case '--out': args.out = path.resolve(value()); break;
      case '--user-data': args.userData = path.resolve(value()); break;
      case '--provider': {
        const p = ProviderSchema.safeParse(value());
        if (!p.success) throw new Error(`--provider expects one of ${ProviderSchema.options.join(', ')}`);
        args.provider = p.data;
        break;
      }
      case '--demo': args.demo = true; break;
      case '--port': if (inline === undefined) i++; break;
      default: break;
    }
  }
  return args;
}

/** Settings: flags win over the saved file, which wins over the defaults under the user-data folder. */
export function resolveSettings(args: DesktopArgs, settingsFile: string): EngineSettings {
  let saved: Partial<EngineSettings> = {};
  try {
    const parsed = EngineSettingsSchema.partial().safeParse(JSON.parse(fs.readFileSync(settingsFile, 'utf8')));
    if (parsed.success) saved = parsed.data;
  } catch {
    /* no settings yet, or unreadable: the defaults */
  }
  return {
    modelsDir: args.models ?? saved.modelsDir ?? path.join(args.userData, 'models'),
    outputDir: args.out ?? saved.outputDir ?? path.join(args.userData, 'outputs'),
    provider: args.provider ?? saved.provider ?? 'cpu',
  };
}

export function saveSettings(settingsFile: string, s: EngineSettings): Promise<void> {
  return writeFileAtomic(settingsFile, JSON.stringify(s, null, 2) + '\n');
}

/**
 * Providers worth offering here (the engine still falls back to CPU with a notice): CPU and
 * WebGPU everywhere, CUDA where its provider library was installed, DirectML on Windows.
 * `ortBinDir` is onnxruntime-node's bin/napi-v6 folder.
 */
export function providersHere(ortBinDir: string, platform = process.platform, arch = process.arch): EngineSettings['provider'][] {
  const list: EngineSettings['provider'][] = ['cpu', 'webgpu'];
  const bin = path.join(ortBinDir, platform, arch);
  let files: string[] = [];
  try {
    files = fs.readdirSync(bin);
  } catch {
    /* no binaries for this platform: CPU and WebGPU are still offered, the engine reports failures */
  }
  if (files.some((f) => /providers_cuda/.test(f))) list.push('cuda');
  if (platform === 'win32') list.push('dml');
  return list;
}
