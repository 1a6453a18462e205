/**
 * The labelled grid of a sweep (an XY plot): one cell per job, its first image scaled to fit; the
 * columns are the first group of the expansion (engine/sweep.ts), the rows every other group
 * combined, each labelled with the values it stands for. A failed job leaves its cell grey. The
 * PNG carries the sweep's own workflow (Sweep node included), so dropping it reopens the batch.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { addTextChunks, WORKFLOW_CHUNK_KEY } from '../png.js';
import type { Workflow } from '../protocol.js';
import type { SweepExpansion } from '../sweep.js';
import { stringifyWorkflow } from '../workflow.js';

/** A cell is at most this many pixels wide or high (larger images are scaled down). */
const MAX_CELL = 384;
const HEADER = 36;
const FONT = 15;
const GAP = 4;

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/** Row index of a job's cell: the groups after the first, the second fastest. */
export function gridPosition(cell: number[], sizes: number[]): { col: number; row: number } {
  let row = 0;
  let stride = 1;
  for (let g = 1; g < cell.length; g++) {
    row += cell[g] * stride;
    stride *= sizes[g];
  }
  return { col: cell[0] ?? 0, row };
}

/** The grid image (PNG bytes) of `expansion`, from each job's first PNG (null: the job failed). */
export async function composeGrid(expansion: SweepExpansion, images: (Uint8Array | null)[], source: Workflow): Promise<Buffer> {
  const { groups, jobs } = expansion;
  const sizes = groups.map((g) => g.size);
  const cols = sizes[0] ?? 1;
  const rows = sizes.slice(1).reduce((n, s) => n * s, 1);
  const first = images.find((i): i is Uint8Array => i !== null);
  const meta = first ? await sharp(first).metadata() : { width: 64, height: 64 };
  const scale = Math.min(1, MAX_CELL / Math.max(meta.width ?? 64, meta.height ?? 64));
  const cw = Math.max(1, Math.round((meta.width ?? 64) * scale));
  const ch = Math.max(1, Math.round((meta.height ?? 64) * scale));
  const rowLabel = (r: number) => {
    const parts: string[] = [];
    let rest = r;
    for (let g = 1; g < groups.length; g++) {
      parts.push(groups[g].label(rest % sizes[g]));
      rest = Math.floor(rest / sizes[g]);
    }
    return parts;
  };
  const longest = Math.max(0, ...Array.from({ length: rows }, (_, r) => Math.max(0, ...rowLabel(r).map((s) => s.length))));
  const left = groups.length > 1 ? Math.min(360, 16 + Math.ceil(longest * FONT * 0.6)) : 0;
  const width = left + cols * (cw + GAP) + GAP;
  const height = HEADER + rows * (ch + GAP) + GAP;

  const texts: string[] = [];
  for (let c = 0; c < cols; c++) {
    const label = groups[0]?.label(c) ?? '';
    texts.push(
      `<text x="${left + GAP + c * (cw + GAP) + cw / 2}" y="${HEADER - 12}" text-anchor="middle" font-size="${FONT}">${escapeXml(label.slice(0, Math.max(8, Math.floor(cw / (FONT * 0.55)))))}</text>`,
    );
  }
  for (let r = 0; r < rows; r++) {
    const lines = rowLabel(r);
    const y0 = HEADER + r * (ch + GAP) + ch / 2 - ((lines.length - 1) * (FONT + 4)) / 2 + FONT / 3;
    lines.forEach((l, i) => texts.push(`<text x="8" y="${y0 + i * (FONT + 4)}" font-size="${FONT}">${escapeXml(l)}</text>`));
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" fill="#111">${texts.join('')}</g></svg>`;

  const layers: OverlayOptions[] = [{ input: Buffer.from(svg), left: 0, top: 0 }];
  for (const job of jobs) {
    const { col, row } = gridPosition(job.cell, sizes);
    const png = images[job.index];
    const left0 = left + GAP + col * (cw + GAP);
    const top0 = HEADER + row * (ch + GAP);
    const input = png
      ? await sharp(png).resize(cw, ch, { fit: 'contain', background: '#ffffff' }).removeAlpha().png().toBuffer()
      : await sharp({ create: { width: cw, height: ch, channels: 3, background: '#bbbbbb' } })
          .png()
          .toBuffer();
    layers.push({ input, left: left0, top: top0 });
  }
  const png = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toBuffer();
  return Buffer.from(addTextChunks(png, { [WORKFLOW_CHUNK_KEY]: stringifyWorkflow(source).trimEnd() }));
}
