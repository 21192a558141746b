/**
 * Regenerates docs/synthetic-hfus.png: for each class of the synthetic HFUS
 * dataset, the first image of the default dataset (at a larger size) beside
 * its layer map. Run: node --import tsx scripts/make-docs-pictures.ts
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { writeFileAtomic } from '../src/core/store/atomic.ts';
import { HFUS_CLASSES } from '../src/plugins/datasets/hfus-phantom.ts';
import { grayPng, phantomFor, SYNTHETIC_HFUS_DEFAULTS } from '../src/plugins/datasets/synthetic-hfus.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUTPUT = path.join(ROOT, 'docs', 'synthetic-hfus.png');
const PANEL = 224;
const GAP = 8;
const LABEL = 176;
const HEADER = 28;

const NAMES: Record<string, string> = {
  AD: 'AD · atopic dermatitis',
  CG: 'CG · healthy control',
  PS: 'PS · psoriasis',
  ST: 'ST · skin tumour',
};

const text = (content: string, width: number, height: number, anchor: 'start' | 'middle') =>
  Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
      `<text x="${anchor === 'middle' ? width / 2 : 4}" y="${height / 2 + 5}" text-anchor="${anchor}" font-family="DejaVu Sans, sans-serif" font-size="14" fill="#222">${content}</text></svg>`,
  );

async function main(): Promise<void> {
  const params = { ...SYNTHETIC_HFUS_DEFAULTS, size: PANEL };
  const width = LABEL + 2 * PANEL + 3 * GAP;
  const height = HEADER + HFUS_CLASSES.length * (PANEL + GAP) + GAP;
  const layers: sharp.OverlayOptions[] = [
    { input: text('image', PANEL, HEADER, 'middle'), left: LABEL + GAP, top: 0 },
    { input: text('layer map', PANEL, HEADER, 'middle'), left: LABEL + PANEL + 2 * GAP, top: 0 },
  ];
  for (const [row, cls] of HFUS_CLASSES.entries()) {
    const phantom = phantomFor(params, cls, 0);
    const top = HEADER + row * (PANEL + GAP);
    layers.push(
      { input: text(NAMES[cls], LABEL, PANEL, 'start'), left: 0, top },
      { input: await grayPng(phantom.image, PANEL, PANEL), left: LABEL + GAP, top },
      { input: await grayPng(phantom.layerMap, PANEL, PANEL), left: LABEL + PANEL + 2 * GAP, top },
    );
  }
  const picture = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png({ compressionLevel: 9 })
    .toBuffer();
  await writeFileAtomic(OUTPUT, picture);
  process.stdout.write(`wrote ${path.relative(process.cwd(), OUTPUT)} (${width}×${height})\n`);
}

await main();
