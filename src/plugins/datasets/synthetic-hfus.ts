/**
 * `synthetic-hfus`: HFUS-like skin phantoms with ground-truth layer maps,
 * generated from params alone and laid out like a real `image-folder`
 * dataset, so everything downstream runs the same code path as real data.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { DatasetIndex, DatasetItem, DatasetPlugin } from '../../core/plugins/types.ts';
import { encodePng } from '../../core/io/image-io.ts';
import { seededRandom } from '../../core/random.ts';
import { HFUS_CLASSES, MARKER_SIZE, renderPhantom, type HfusClass, type MarkerBox, type Phantom } from './hfus-phantom.ts';
import { mixSeed } from './phantom-noise.ts';

export interface SyntheticHfusParams {
  perClass: number;
  size: number | [number, number];
  seed: number;
  noise: number;
  /** `size`: the marker's length as a share of the image width. */
  shortcut: { probability: number; classes: HfusClass[]; size: number };
}

export const SYNTHETIC_HFUS_DEFAULTS: SyntheticHfusParams = { perClass: 50, size: 128, seed: 1, noise: 0.8, shortcut: { probability: 0, classes: [], size: MARKER_SIZE } };

/** Salt of the stream that decides which images carry the shortcut, apart from the images' own streams. */
const SHORTCUT_STREAM = 0x5c;
/** Images encoded at once: sharp encodes on libuv's thread pool. */
const BATCH = 8;

export function imageShape(size: SyntheticHfusParams['size']): { height: number; width: number } {
  return Array.isArray(size) ? { height: size[0], width: size[1] } : { height: size, width: size };
}

export function fileName(cls: HfusClass, index: number, perClass: number): string {
  return `${cls}-${String(index + 1).padStart(Math.max(3, String(perClass).length), '0')}.png`;
}

/**
 * Image `index` of class `cls`. Every image has its own PRNG stream keyed by
 * (seed, class, index), so adding images or changing the shortcut leaves the
 * other images as they were.
 */
export function phantomFor(params: SyntheticHfusParams, cls: HfusClass, index: number): Phantom {
  const label = HFUS_CLASSES.indexOf(cls);
  const { height, width } = imageShape(params.size);
  const marked = params.shortcut.classes.includes(cls) && seededRandom(mixSeed(params.seed, label, index, SHORTCUT_STREAM))() < params.shortcut.probability;
  return renderPhantom({ cls, height, width, noise: params.noise, marker: marked, markerSize: params.shortcut.size ?? MARKER_SIZE }, seededRandom(mixSeed(params.seed, label, index)));
}

/** 8-bit grayscale PNG; `encodePng` pins its encoder settings, so the bytes depend on the pixels alone. */
export function grayPng(pixels: Uint8Array, width: number, height: number): Promise<Buffer> {
  return encodePng({ width, height, channels: 1, data: pixels });
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

const classNames = HFUS_CLASSES.map((c) => `"${c}"`).join(', ');

export const syntheticHfus: DatasetPlugin<SyntheticHfusParams> = {
  kind: 'dataset',
  id: 'synthetic-hfus',
  // 2: the shortcut marker is a line of text `shortcut.size` × the width long, not a 3-pixel "+".
  version: '2',
  description: 'Synthetic HFUS skin phantoms (AD, CG, PS, ST) with graded layer maps and an optional shortcut marker.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      perClass: { type: 'integer', minimum: 1, maximum: 100000, default: SYNTHETIC_HFUS_DEFAULTS.perClass, description: 'Images per class.' },
      size: {
        description: 'Image size in pixels: one number for square images, or [height, width] (sweep sizes with { grid: [...] }).',
        default: SYNTHETIC_HFUS_DEFAULTS.size,
        type: ['integer', 'array'],
        oneOf: [
          { type: 'integer', minimum: 16, maximum: 4096 },
          { type: 'array', items: { type: 'integer', minimum: 16, maximum: 4096 }, minItems: 2, maxItems: 2 },
        ],
      },
      seed: { type: 'integer', minimum: 0, maximum: 4294967295, default: SYNTHETIC_HFUS_DEFAULTS.seed, description: 'Seed of the generator: the same params give byte-identical files.' },
      noise: { type: 'number', minimum: 0, maximum: 1, default: SYNTHETIC_HFUS_DEFAULTS.noise, description: 'Speckle strength: 0 = smooth tissue, 1 = fully developed speckle.' },
      shortcut: {
        type: 'object',
        additionalProperties: false,
        default: { probability: 0, classes: [], size: MARKER_SIZE },
        description: 'A bright line of text burnt into the top of images of the listed classes, as a scanner prints its settings, lying in the gel outside every layer-map band (cut off where the skin comes closer to the top), so models can be right for the wrong reason. shortcut-markers.json lists the marked images and the box of each marker.',
        properties: {
          probability: { type: 'number', minimum: 0, maximum: 1, default: 0, description: 'Chance that an image of a listed class carries the marker.' },
          classes: { type: 'array', items: { enum: [...HFUS_CLASSES] }, uniqueItems: true, default: [], description: `Classes that can carry the marker (${classNames}); other classes never do.` },
          size: {
            type: 'number',
            exclusiveMinimum: 0,
            maximum: 1,
            default: MARKER_SIZE,
            description: 'Length of the marker as a share of the image width (0.8: about a dozen characters; one character at the least); its characters are 5/64 of the shorter side tall.',
          },
        },
      },
    },
  },
  async inputFiles() {
    return [];
  },
  async index(ctx) {
    const params = ctx.params;
    const { height, width } = imageShape(params.size);
    const jobs = HFUS_CLASSES.flatMap((cls, label) => Array.from({ length: params.perClass }, (_, index) => ({ cls, label, index })));
    const items: DatasetItem[] = [];
    const markers: ({ id: string } & MarkerBox)[] = [];
    for (let start = 0; start < jobs.length; start += BATCH) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const batch = jobs.slice(start, start + BATCH);
      items.push(
        ...(await Promise.all(
          batch.map(async ({ cls, label, index }) => {
            const file = fileName(cls, index, params.perClass);
            const id = `${cls}/${file}`;
            const phantom = phantomFor(params, cls, index);
            if (phantom.marker) markers.push({ id, ...phantom.marker });
            const [image, map] = await Promise.all([grayPng(phantom.image, width, height), grayPng(phantom.layerMap, width, height)]);
            await Promise.all([ctx.writeFile(`images/${cls}/${file}`, image), ctx.writeFile(`layer-maps/${file}`, map)]);
            return { id, label, image: path.join(ctx.out, 'images', cls, file), layerMap: path.join(ctx.out, 'layer-maps', file), sha256: sha256(image), width, height };
          }),
        )),
      );
      ctx.progress(items.length, jobs.length, 'images');
    }
    // Ground truth of the shortcut, for checking that a metric catches a model that looks at it.
    markers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    await ctx.writeFile('shortcut-markers.json', `${JSON.stringify({ params, markers }, null, 1)}\n`);
    const index: DatasetIndex = { classes: [...HFUS_CLASSES], items };
    return index;
  },
};
