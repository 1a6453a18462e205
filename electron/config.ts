/**
 * The desktop app's command-line flags: the same as web mode's, so `npm start -- --models DIR
 * --demo` means the same whichever host opens. Saved settings, providers and the user-data folder
 * (shared with web mode and the CLI) come from engine/hosts/host-config.ts.
 */
import * as path from 'node:path';
import type { EngineSettings } from '../engine/api.js';
import { defaultUserData } from '../engine/hosts/host-config.js';
import { ProviderSchema } from '../engine/protocol.js';

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
  const args: DesktopArgs = { demo: false, userData: defaultUserData(env) };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('--') && argv[i].includes('=') ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--models':
        args.models = path.resolve(value());
        break;
      case '--out':
        args.out = path.resolve(value());
        break;
      case '--user-data':
        args.userData = path.resolve(value());
        break;
      case '--provider': {
        const p = ProviderSchema.safeParse(value());
        if (!p.success) throw new Error(`--provider expects one of ${ProviderSchema.options.join(', ')}`);
        args.provider = p.data;
        break;
      }
      case '--demo':
        args.demo = true;
        break;
      case '--port':
        if (inline === undefined) i++;
        break;
      default:
        break;
    }
  }
  return args;
}
