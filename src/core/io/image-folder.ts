/**
 * Listing and checking datasets laid out as `<class>/<file>` folders, shared
 * by the `image-folder` and `kfold-folders` dataset plugins: class folders,
 * layer maps matched to images by file name, sizes read from every file, and
 * the rules for bad input (unreadable images, missing or mis-sized maps).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MissingInputError, UserError } from '../errors.ts';
import type { DatasetItem } from '../plugins/types.ts';
import { IMAGE_EXTENSIONS, UnreadableImageError, isImageFileName, readImage } from './image-io.ts';

export type OnBadImage = 'error' | 'skip';

/** One image file of a class. */
export interface ClassImage {
  /** `<class>/<file name>`. */
  id: string;
  cls: string;
  /** Absolute path. */
  file: string;
}

export interface ClassFolderListing {
  /** Folder names, in code-unit order so every machine agrees. */
  classes: string[];
  /** Class folders that hold no image. */
  empty: string[];
  images: ClassImage[];
  /** Files and folders that are neither class folders nor images of a supported type. */
  ignored: string[];
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const visible = (name: string) => !name.startsWith('.');
const isDirectory = (file: string) => statSync(file).isDirectory();

export const SUPPORTED_LIST = IMAGE_EXTENSIONS.join(' ');

/** Throws a `MissingInputError` when `folder` is absent, a `UserError` when it is a file. */
export function requireFolder(folder: string, what: string, param: string): void {
  if (!existsSync(folder)) throw new MissingInputError(folder, what, `create it or fix dataset.params.${param}`);
  if (!isDirectory(folder)) throw new UserError(`${what} ${folder} is a file, not a folder; point dataset.params.${param} at a folder.`);
}

/** `<root>/<class>/<image>`; hidden entries are skipped. */
export function listClassFolders(root: string): ClassFolderListing {
  const listing: ClassFolderListing = { classes: [], empty: [], images: [], ignored: [] };
  for (const cls of readdirSync(root).filter(visible).sort(byCodeUnit)) {
    const folder = path.join(root, cls);
    if (!isDirectory(folder)) {
      listing.ignored.push(folder);
      continue;
    }
    listing.classes.push(cls);
    let count = 0;
    for (const name of readdirSync(folder).filter(visible).sort(byCodeUnit)) {
      const file = path.join(folder, name);
      if (isImageFileName(name) && !isDirectory(file)) {
        listing.images.push({ id: `${cls}/${name}`, cls, file });
        count++;
      } else {
        listing.ignored.push(file);
      }
    }
    if (count === 0) listing.empty.push(cls);
  }
  return listing;
}

/** Image files of a layer-map folder: `<root>/<file>` and `<root>/<class>/<file>`. */
export function listLayerMaps(root: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(root).filter(visible)) {
    const entry = path.join(root, name);
    if (isDirectory(entry)) {
      for (const inner of readdirSync(entry).filter(visible)) {
        const file = path.join(entry, inner);
        if (isImageFileName(inner) && !isDirectory(file)) files.push(file);
      }
    } else if (isImageFileName(name)) {
      files.push(entry);
    }
  }
  return files.sort(byCodeUnit);
}

/** Warns once about entries a listing ignored, naming a few. */
export function warnIgnored(ignored: string[], where: string, warn: (message: string) => void): void {
  if (ignored.length === 0) return;
  const shown = ignored.slice(0, 3).map((f) => path.basename(f)).join(', ');
  warn(`ignoring ${ignored.length} entr${ignored.length === 1 ? 'y' : 'ies'} in ${where} that ${ignored.length === 1 ? 'is' : 'are'} not an image of a supported type (${SUPPORTED_LIST}) in a class folder: ${shown}${ignored.length > 3 ? ', …' : ''}.`);
}

const stemOf = (name: string) => name.slice(0, name.length - path.extname(name).length);

/**
 * Pairs images with layer maps by file name, the way the study keyed its
 * maps: a map named like the image (or like it with another extension), in
 * `<root>/<class>/` or directly in `<root>/`. The class folder and the exact
 * name win over the flat folder and the stem.
 */
export function matchLayerMaps(images: ClassImage[], root: string, mapFiles: string[]): { byId: Map<string, string>; unmatched: string[] } {
  const exact = new Map<string, string>();
  const byStem = new Map<string, string[]>();
  for (const file of mapFiles) {
    const relative = path.relative(root, file).split(path.sep);
    const folder = relative.length > 1 ? relative[0] : '';
    const name = relative[relative.length - 1];
    exact.set(`${folder}\0${name}`, file);
    const key = `${folder}\0${stemOf(name)}`;
    byStem.set(key, [...(byStem.get(key) ?? []), file]);
  }
  const byId = new Map<string, string>();
  const claimedBy = new Map<string, string>();
  const claim = (image: ClassImage, map: string) => {
    const other = claimedBy.get(map);
    if (other !== undefined) {
      throw new UserError(`layer map ${map} matches two images, ${other} and ${image.file}; put layer maps in per-class folders (<layerMaps>/<class>/<file>) or give the images distinct names.`);
    }
    claimedBy.set(map, image.file);
    byId.set(image.id, map);
  };
  const exactFor = (image: ClassImage) => exact.get(`${image.cls}\0${path.basename(image.file)}`) ?? exact.get(`\0${path.basename(image.file)}`);
  // Exact names first, so that `a.png` keeps map `a.png` even when image `a.bmp` would match it by stem.
  const pending: ClassImage[] = [];
  for (const image of images) {
    const map = exactFor(image);
    if (map) claim(image, map);
    else pending.push(image);
  }
  const exactClaimed = new Set(claimedBy.keys());
  for (const image of pending) {
    const stem = stemOf(path.basename(image.file));
    for (const folder of [image.cls, '']) {
      const candidates = (byStem.get(`${folder}\0${stem}`) ?? []).filter((map) => !exactClaimed.has(map));
      if (candidates.length > 1) {
        throw new UserError(`image ${image.file} has several layer maps (${candidates.map((f) => path.basename(f)).join(', ')}) in ${path.join(root, folder)}; keep one per image.`);
      }
      if (candidates.length === 1) {
        claim(image, candidates[0]);
        break;
      }
    }
  }
  return { byId, unmatched: mapFiles.filter((map) => !claimedBy.has(map)) };
}

export interface IndexImagesOptions {
  classes: string[];
  images: ClassImage[];
  /** The layer-map folder (absolute) and its files, when the dataset has maps. */
  layerMaps?: { root: string; files: string[] };
  onBadImage: OnBadImage;
  /** SHA-256 of a file, when the index stage already hashed it. */
  knownHashes?: Map<string, string>;
  warn(message: string): void;
  progress?(done: number, total: number, note?: string): void;
}

export function sha256Of(file: string, known?: Map<string, string>): string {
  return known?.get(file) ?? createHash('sha256').update(readFileSync(file)).digest('hex');
}

const BAD_IMAGE_HINT = 're-export it, or set dataset.params.onBadImage: skip to leave it out';

/** Runs `task` over `items` with at most `limit` running at once, keeping the order of results. */
async function mapLimit<T, R>(items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

type Decoded = { width: number; height: number } | { bad: string };

/** Decodes a file fully (a truncated image only shows itself there) and keeps its size. */
async function sizeOf(file: string): Promise<Decoded> {
  try {
    const { width, height } = await readImage(file);
    return { width, height };
  } catch (error) {
    if (error instanceof UnreadableImageError) return { bad: error.reason };
    throw error;
  }
}

/**
 * Items for the images, in their given order: labels, sizes, hashes and
 * matched layer maps, with every file decoded once to prove it readable.
 * Returns the ids it left out (unreadable images with `onBadImage: skip`).
 */
export async function indexImages(options: IndexImagesOptions): Promise<{ items: DatasetItem[]; skipped: string[] }> {
  const { classes, images, layerMaps, onBadImage, warn } = options;
  const matched = layerMaps ? matchLayerMaps(images, layerMaps.root, layerMaps.files) : { byId: new Map<string, string>(), unmatched: [] };
  if (matched.unmatched.length > 0) {
    const shown = matched.unmatched.slice(0, 3).map((f) => path.relative(layerMaps!.root, f)).join(', ');
    warn(`${matched.unmatched.length} layer map(s) in ${layerMaps!.root} match no image and are ignored: ${shown}${matched.unmatched.length > 3 ? ', …' : ''}.`);
  }
  const badFile = (file: string, reason: string) => {
    if (onBadImage === 'error') throw new UnreadableImageError(file, reason, BAD_IMAGE_HINT);
    warn(`skipping ${file}: it is not a readable image (${reason}).`);
  };
  let done = 0;
  const concurrency = Math.max(1, Math.min(8, os.availableParallelism()));
  const decoded = await mapLimit(images, concurrency, async (image) => {
    const map = matched.byId.get(image.id);
    const [own, ofMap] = await Promise.all([sizeOf(image.file), map ? sizeOf(map) : undefined]);
    options.progress?.(++done, images.length, 'images');
    return { image, map, own, ofMap };
  });

  const items: DatasetItem[] = [];
  const skipped: string[] = [];
  for (const { image, map, own, ofMap } of decoded) {
    if ('bad' in own) {
      badFile(image.file, own.bad);
      skipped.push(image.id);
      continue;
    }
    const item: DatasetItem = { id: image.id, label: classes.indexOf(image.cls), image: image.file, sha256: sha256Of(image.file, options.knownHashes), width: own.width, height: own.height };
    if (map && ofMap) {
      if ('bad' in ofMap) {
        badFile(map, ofMap.bad);
      } else if (ofMap.width !== own.width || ofMap.height !== own.height) {
        throw new UserError(`layer map ${map} is ${ofMap.width}×${ofMap.height} but its image ${image.file} is ${own.width}×${own.height}; a layer map must have its image's size.`);
      } else {
        item.layerMap = map;
      }
    }
    items.push(item);
  }

  if (layerMaps) {
    const without = items.filter((item) => !item.layerMap);
    if (without.length > 0) {
      warn(`${without.length} of ${items.length} images have no layer map in ${layerMaps.root} (first: ${without[0].id}); layer-map metrics will skip them.`);
    }
  }
  return { items, skipped };
}

/** Raises the error for a class left without images (an empty folder, or all of it unreadable). */
export function checkClassesHaveImages(classes: string[], items: DatasetItem[], folderOf: (cls: string) => string): void {
  classes.forEach((cls, label) => {
    if (!items.some((item) => item.label === label)) {
      throw new UserError(`class folder ${folderOf(cls)} has no readable images; add images (${SUPPORTED_LIST}) to it or remove it.`);
    }
  });
}
