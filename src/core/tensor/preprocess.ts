/**
 * What happens to an image between the file and the network: resize, three
 * channels, normalisation. The `Preprocessing` object is plain JSON so that
 * training records it with the model and explain/score re-apply exactly the
 * same steps. Augmentation is separate and only ever used for training.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { seededRandom } from '../random.ts';

export type Normalisation =
  | { kind: 'unit' }
  | { kind: 'meanStd'; mean: [number, number, number]; std: [number, number, number] };

export interface Preprocessing {
  /** Network input size, [height, width]. */
  size: [number, number];
  normalisation: Normalisation;
}

/** The statistics torchvision's ImageNet weights were trained with; pretrained models expect them. */
export const IMAGENET_NORMALISATION: Normalisation = { kind: 'meanStd', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Bits per sample of the source image: 8-bit files span 0…255, 16-bit ones 0…65535. */
export type BitDepth = 8 | 16;

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

function isTriple(value: unknown, accept: (n: number) => boolean): value is [number, number, number] {
  return Array.isArray(value) && value.length === 3 && value.every((n) => typeof n === 'number' && Number.isFinite(n) && accept(n));
}

/** Checks a recorded preprocessing (e.g. read back from a model folder); `source` names where it came from. */
export function validatePreprocessing(value: unknown, source: string): Preprocessing {
  const candidate = value as Partial<Preprocessing> | null;
  if (typeof candidate !== 'object' || candidate === null) {
    throw new UserError(`${source} holds no preprocessing object; re-train the model or write {"size": [h, w], "normalisation": {"kind": "unit"}}.`);
  }
  const size = candidate.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every(isPositiveInteger)) {
    throw new UserError(`${source}: preprocessing size must be [height, width] in whole pixels, not ${JSON.stringify(size)}.`);
  }
  const normalisation = candidate.normalisation as Partial<{ kind: string; mean: unknown; std: unknown }> | undefined;
  if (normalisation?.kind === 'unit') return { size: [size[0], size[1]], normalisation: { kind: 'unit' } };
  if (normalisation?.kind === 'meanStd') {
    if (!isTriple(normalisation.mean, () => true) || !isTriple(normalisation.std, (n) => n > 0)) {
      throw new UserError(`${source}: meanStd normalisation needs three means and three positive standard deviations, one per RGB channel.`);
    }
    return { size: [size[0], size[1]], normalisation: { kind: 'meanStd', mean: [...normalisation.mean], std: [...normalisation.std] } };
  }
  throw new UserError(`${source}: normalisation kind must be "unit" or "meanStd", not ${JSON.stringify(normalisation?.kind)}.`);
}

function asBatch(images: tf.Tensor3D | tf.Tensor4D): tf.Tensor4D {
  if (images.rank === 4) return images as tf.Tensor4D;
  if (images.rank === 3) return tf.expandDims(images, 0) as tf.Tensor4D;
  throw new Error(`expected an image [h, w, c] or a batch [n, h, w, c], got shape [${images.shape.join(', ')}]`);
}

/** Bilinear resize with half-pixel centres: the sampling OpenCV's and PyTorch's resizes use, so maps line up with the reference. */
export function resizeImages(images: tf.Tensor3D | tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => tf.image.resizeBilinear(asBatch(images).toFloat(), size, false, true));
}

/**
 * Nearest-neighbour resize for layer maps: a label is a category, and
 * interpolating 255 and 128 would invent a level that means nothing. Accepts
 * [h, w], [n, h, w] or [n, h, w, 1]; keeps the rank and dtype.
 */
export function resizeLayerMaps<T extends tf.Tensor2D | tf.Tensor3D | tf.Tensor4D>(maps: T, size: [number, number]): T {
  return tf.tidy(() => {
    const batch = maps.rank === 2 ? maps.reshape([1, ...maps.shape, 1]) : maps.rank === 3 ? maps.expandDims(-1) : maps;
    const resized = tf.image.resizeNearestNeighbor(batch as tf.Tensor4D, size, false, true);
    const shaped = maps.rank === 2 ? resized.reshape(size) : maps.rank === 3 ? resized.squeeze([3]) : resized;
    return shaped.dtype === maps.dtype ? shaped : shaped.cast(maps.dtype);
  }) as T;
}

/**
 * Three channels whatever the source: gray is repeated (ImageNet-shaped
 * networks want RGB), and an alpha channel is dropped rather than composited,
 * since scanner exports are opaque.
 */
export function toThreeChannels(images: tf.Tensor3D | tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const batch = asBatch(images);
    const channels = batch.shape[3];
    if (channels === 3) return batch.clone();
    if (channels === 4) return tf.slice(batch, [0, 0, 0, 0], [-1, -1, -1, 3]);
    if (channels === 1 || channels === 2) return tf.tile(tf.slice(batch, [0, 0, 0, 0], [-1, -1, -1, 1]), [1, 1, 1, 3]);
    throw new Error(`expected 1 to 4 image channels, got ${channels}`);
  });
}

/** Raw sample values → [0, 1] by the source's full range (not the image's own min and max, which would differ per image). */
export function toUnitRange(images: tf.Tensor4D, bitDepth: BitDepth = 8): tf.Tensor4D {
  return tf.tidy(() => tf.div(images.toFloat(), bitDepth === 16 ? 65535 : 255) as tf.Tensor4D);
}

/** Applies a normalisation to images already in [0, 1]. */
export function normaliseUnit(unit: tf.Tensor4D, normalisation: Normalisation): tf.Tensor4D {
  if (normalisation.kind === 'unit') return unit.clone();
  return tf.tidy(() => tf.div(tf.sub(unit, tf.tensor1d(normalisation.mean)), tf.tensor1d(normalisation.std)) as tf.Tensor4D);
}

/** Raw sample values → normalised values. */
export function normalise(images: tf.Tensor4D, normalisation: Normalisation, bitDepth: BitDepth = 8): tf.Tensor4D {
  return tf.tidy(() => normaliseUnit(toUnitRange(images, bitDepth), normalisation));
}

export interface PreprocessOptions {
  /** Bits per sample of the source images (default 8). */
  bitDepth?: BitDepth;
  /** Training only: the augmentation and the seed (or seeded random source) that drives it. */
  augment?: { augmentation: Augmentation; random: number | (() => number) };
}

/** Raw images (sample values as read from the files) → network input [n, h, w, 3]. */
export function preprocessImages(images: tf.Tensor3D | tf.Tensor4D, preprocessing: Preprocessing, options: PreprocessOptions = {}): tf.Tensor4D {
  return tf.tidy(() => {
    let unit = toUnitRange(toThreeChannels(resizeImages(images, preprocessing.size)), options.bitDepth);
    // Augment in [0, 1] before normalising, as torchvision pipelines do, so a rotation's fill is black rather than "mean grey".
    if (options.augment) unit = augmentImages(unit, options.augment.augmentation, options.augment.random);
    return normaliseUnit(unit, preprocessing.normalisation);
  });
}

// ---------------------------------------------------------------- augmentation

export interface Augmentation {
  /** Largest rotation in degrees; each image turns by a uniform angle in [-rotate, rotate]. */
  rotate?: number;
  /** Which flips may happen; `both` flips horizontally and vertically, each independently. */
  flip?: 'none' | 'horizontal' | 'vertical' | 'both';
  /** Chance of each allowed flip (default 0.5, like torchvision's RandomHorizontalFlip). */
  flipProbability?: number;
  /** Sampling for rotation (default nearest, torchvision's RandomRotation default). */
  interpolation?: 'nearest' | 'bilinear';
  /** Value of the corners a rotation uncovers (default 0). */
  fill?: number;
}

interface ImageDraw {
  degrees: number;
  flipHorizontal: boolean;
  flipVertical: boolean;
}

/**
 * Every image consumes exactly three draws, whatever is enabled, so turning
 * one augmentation on or off does not reshuffle the others.
 */
function drawForImage(augmentation: Augmentation, random: () => number): ImageDraw {
  const angle = random();
  const horizontal = random();
  const vertical = random();
  const p = augmentation.flipProbability ?? 0.5;
  const flip = augmentation.flip ?? 'none';
  return {
    degrees: (2 * angle - 1) * (augmentation.rotate ?? 0),
    flipHorizontal: (flip === 'horizontal' || flip === 'both') && horizontal < p,
    flipVertical: (flip === 'vertical' || flip === 'both') && vertical < p,
  };
}

/**
 * The inverse map tf.image.transform wants (output pixel → input pixel) for a
 * rotation about the image centre; exact identity at 0 degrees.
 */
function rotationMatrix(degrees: number, height: number, width: number): number[] {
  const radians = (degrees * Math.PI) / 180;
  const cos = Math.cos(radians);
  const sin = Math.sin(radians);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  return [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0, 0];
}

/**
 * Random rotation and flips, drawn per image from `random` (a seed, or a
 * `seededRandom` a training loop carries across batches), so the same seed
 * gives the same batch.
 */
export function augmentImages(images: tf.Tensor4D, augmentation: Augmentation, random: number | (() => number)): tf.Tensor4D {
  const [count, height, width] = images.shape;
  const next = typeof random === 'number' ? seededRandom(random) : random;
  const draws = Array.from({ length: count }, () => drawForImage(augmentation, next));
  return tf.tidy(() => {
    // One image at a time: tfjs 4.22's cpu Transform kernel returns after the first image of a batch.
    const out = draws.map((draw, i) => {
      let image = tf.slice(images, [i, 0, 0, 0], [1, -1, -1, -1]);
      if (draw.degrees !== 0) {
        const matrix = tf.tensor2d([rotationMatrix(draw.degrees, height, width)], [1, 8]);
        image = tf.image.transform(image, matrix, augmentation.interpolation ?? 'nearest', 'constant', augmentation.fill ?? 0);
      }
      if (draw.flipHorizontal) image = tf.reverse(image, 2);
      if (draw.flipVertical) image = tf.reverse(image, 1);
      return image;
    });
    return tf.concat(out, 0);
  });
}
