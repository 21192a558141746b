/**
 * The report's gallery: for the first few test images of each class, the
 * image, its layer map, and each explainer's map over it (the explain
 * artifact's JET preview), per model. Pictures are written, scaled down, into
 * the report artifact's `gallery/` folder, which the page refers to by
 * relative path, so the report opens from disk.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { ResultRow } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { ARTIFACT_FILES, readIndex, readJson, resolveItemPath } from '../stages/artifacts.ts';
import { previewFile } from '../stages/maps.ts';
import { REPORT_FILES } from './files.ts';
import type { SplitResult } from '../stages/split.ts';
import { isImageFileName, readImage, type RawImage } from '../io/image-io.ts';

const GALLERY_DIR = REPORT_FILES.gallery;
/** Largest side of a gallery picture, in pixels. */
const SIDE = 192;

export interface GalleryCell {
  /** The dataset variant, when the sweep has several. */
  dataset?: string;
  model: string;
  fold: number;
  explainer: string;
  /** The explain artifact. */
  dir: string;
}

export interface GalleryImage {
  id: string;
  fold: number;
  /** Paths relative to the report folder. */
  image: string;
  layerMap: string | null;
  /** Per model: its prediction and each explainer's overlay (null where the sweep has no map). */
  models: { model: string; predicted: string | null; confidence: number | null; maps: (string | null)[] }[];
}

export interface Gallery {
  /** The dataset variant whose images these are, when the sweep has several. */
  dataset?: string;
  models: string[];
  explainers: string[];
  classes: { name: string; images: GalleryImage[] }[];
}

export interface GalleryInput {
  dataset?: string;
  indexDir: string;
  splitDir: string;
  manifestDir: string;
  cells: GalleryCell[];
  perClass: number;
  predictions: ResultRow[];
  /** The report's staging folder. */
  out: string;
  warn(message: string): void;
}

/** 8-bit samples of an image (16-bit ones shifted down). */
function eightBit(image: RawImage): Uint8Array {
  if (image.data instanceof Uint8Array) return image.data;
  return Uint8Array.from(image.data, (v) => v >> 8);
}

async function writePicture(out: string, name: string, picture: sharp.Sharp, nearest: boolean): Promise<string> {
  const relative = `${GALLERY_DIR}/${name}.png`;
  const png = await picture
    .resize({ width: SIDE, height: SIDE, fit: 'inside', withoutEnlargement: true, kernel: nearest ? 'nearest' : 'lanczos3' })
    .png({ compressionLevel: 9 })
    .toBuffer();
  await writeFileAtomic(path.join(out, ...relative.split('/')), png);
  return relative;
}

const hashOf = (...parts: (string | number)[]) => createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);

async function fromRaw(file: string): Promise<sharp.Sharp> {
  const image = await readImage(file);
  return sharp(eightBit(image), { raw: { width: image.width, height: image.height, channels: image.channels } });
}

/**
 * Writes the gallery's pictures and returns what the page shows; null when
 * there is nothing to show (no explainers, gallery: 0, or a dataset whose
 * items are not images).
 */
export async function buildGallery(input: GalleryInput): Promise<Gallery | null> {
  if (input.perClass <= 0 || input.cells.length === 0) return null;
  const index = readIndex(input.indexDir);
  const split = readJson<SplitResult>(path.join(input.splitDir, ARTIFACT_FILES.split));
  const folds = new Set(input.cells.map((c) => c.fold));
  const foldOf = new Map<string, number>();
  for (const fold of split.folds) if (folds.has(fold.fold)) for (const id of fold.test) if (!foldOf.has(id)) foldOf.set(id, fold.fold);
  const models = [...new Set(input.cells.map((c) => c.model))];
  const explainers = [...new Set(input.cells.map((c) => c.explainer))];
  const cellOf = new Map(input.cells.map((c) => [JSON.stringify([c.model, c.fold, c.explainer]), c]));
  const prediction = new Map(input.predictions.map((p) => [JSON.stringify([p.model, p.fold, p.id]), p]));
  const resolve = (file: string) => resolveItemPath(file, input.indexDir, input.manifestDir);
  // Dataset variants share image ids but not pixels: their pictures get names of their own.
  const nameOf = (...parts: (string | number)[]) => (input.dataset === undefined ? hashOf(...parts) : hashOf(input.dataset, ...parts));

  const classes: Gallery['classes'] = [];
  for (const [label, name] of index.classes.entries()) {
    const candidates = index.items
      .filter((item) => item.label === label && foldOf.has(item.id) && isImageFileName(item.image))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, input.perClass);
    const images: GalleryImage[] = [];
    for (const item of candidates) {
      const fold = foldOf.get(item.id)!;
      let image: string;
      try {
        image = await writePicture(input.out, nameOf('image', item.id), await fromRaw(resolve(item.image)), false);
      } catch (error) {
        input.warn(`gallery: image ${item.id} left out: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      let layerMap: string | null = null;
      if (item.layerMap) {
        try {
          layerMap = await writePicture(input.out, nameOf('layers', item.id), await fromRaw(resolve(item.layerMap)), true);
        } catch (error) {
          input.warn(`gallery: layer map of ${item.id} left out: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      const perModel: GalleryImage['models'] = [];
      for (const model of models) {
        const maps: (string | null)[] = [];
        for (const explainer of explainers) {
          const cell = cellOf.get(JSON.stringify([model, fold, explainer]));
          const preview = cell && path.join(cell.dir, ...previewFile(item.id).split('/'));
          maps.push(preview && existsSync(preview) ? await writePicture(input.out, nameOf('map', model, explainer, item.id), sharp(preview), false) : null);
        }
        const p = prediction.get(JSON.stringify([model, fold, item.id]));
        perModel.push({ model, predicted: p ? String(p.predicted) : null, confidence: typeof p?.confidence === 'number' ? p.confidence : null, maps });
      }
      images.push({ id: item.id, fold, image, layerMap, models: perModel });
    }
    if (images.length > 0) classes.push({ name, images });
  }
  if (classes.length === 0) return null;
  return input.dataset === undefined ? { models, explainers, classes } : { dataset: input.dataset, models, explainers, classes };
}
