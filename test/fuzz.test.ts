/**
 * The bounded fuzz run (issue 13): 300 seeded cases of scripts/fuzz.ts (workflow mutations through
 * parsing, validation and some real runs; corrupted model files through the loaders and some real
 * runs: VAE, IP-Adapter, LoRA, UNet, the text encoder, CLIP vision and ControlNet) in a child process, so a crash or a hang fails this test instead of taking vitest down.
 * Fails on any failure the run reports (uncaught error, hang, internal error, an error naming neither
 * node nor file, a file written outside the output folder). Deeper runs: `npm run fuzz -- --count N`.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/fixtures.js';

const LIMIT_MS = 100_000;

describe('fuzz (bounded)', () => {
  it('300 seeded workflow mutations and corrupted model files: no crash, hang or unnamed error', async () => {
    const child = spawn(
      process.execPath,
      [
        path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'),
        'scripts/fuzz.ts',
        '--count',
        '300',
        '--seed',
        '13',
        '--run-every',
        '25',
        '--case-timeout',
        '45',
        '--json',
      ],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    expect(code === null ? `killed after ${LIMIT_MS / 1000} s (a hang); stderr: ${err.slice(-2000)}` : 'finished').toBe('finished');
    const report = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
      failures: unknown[];
      workflows: { cases: number; run: number };
      files: { cases: number; run: number };
      byKind: Record<string, { cases: number; refused: number; first?: string }>;
      usableAfterwards: boolean;
    };
    expect(report.failures).toEqual([]);
    expect(report.usableAfterwards).toBe(true); // the engine that took every case still runs the clean examples at the end
    expect(code).toBe(0);
    // The run covered both sides, with real runs on each.
    expect(report.workflows.cases + report.files.cases).toBe(300);
    expect(report.workflows.run).toBeGreaterThan(0);
    expect(report.files.run).toBeGreaterThan(0);
    // Every kind of model file was corrupted, and each refusal read is a sentence naming its file and what was expected.
    expect(Object.keys(report.byKind).sort()).toEqual(['clip-vision', 'controlnet', 'ip-adapter', 'lora', 'text-encoder', 'unet', 'vae']);
    for (const [kind, k] of Object.entries(report.byKind)) {
      expect(k.refused, kind).toBeGreaterThan(0);
      expect(k.first, kind).toMatch(/\.safetensors/);
      expect(k.first, kind).toMatch(/expect|need|must|larger|past|not |no |missing|but|truncated|garbled|only|outside|unsupported|invalid/i);
    }
  });
});
