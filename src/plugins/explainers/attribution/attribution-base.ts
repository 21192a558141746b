/**
 * What Captum-style attribution explainers share: the map drawn from an
 * attribution (sign, then Captum's visualize_image_attr normalisation or a
 * min-max), the define helper that fills in defaults and turns an attribution
 * function into an explainer, baselines, per-image seeds and chunked rows.
 *
 * Captum's normalisation (captum.attr._utils.visualization, 0.8): sum over
 * channels; keep the sign asked for (positive: x·[x>0], negative: x·[x<0],
 * absolute: |x|, all: x); threshold t = the smallest value v of the sorted
 * |values| whose cumulative sum reaches (100 − outlier_perc) % of the total
 * (float32 sums, as numpy's cumsum); map = clip(x / t, −1, 1), with t
 * negated for `negative` so that its map is positive. Where t is 0 (nothing
 * of that sign) Captum stops with an assertion; here the map is all zeros and
 * a warning says so.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createAjv, problemsFromAjv, type ValidateFunction } from '../../../core/manifest/ajv.ts';
import { MissingInputError, UserError } from '../../../core/errors.ts';
import type { Json, JsonSchema, LoadedModel, Params } from '../../../core/plugins/types.ts';
import type { BackwardRule } from '../../../core/tensor/engine.ts';
import { mixSeed } from '../../../core/random.ts';
import { rawTensor } from '../../../core/tensor/image-batches.ts';
import { readImage } from '../../../core/io/image-io.ts';
import { normaliseUnit, preprocessImages } from '../../../core/tensor/preprocess.ts';
import { defineTensorExplainer, type ExplainBatch, type TensorExplainer } from '../../../core/tensor/tensor-explainer.ts';

// ---------------------------------------------------------------- maps

export type MapSign = 'positive' | 'negative' | 'absolute' | 'all';

export interface MapOptions {
  sign: MapSign;
  normalize: 'captum' | 'minmax';
  /** Captum's outlier_perc: the share of the cumulative sum left above the threshold. */
  outlierPercent: number;
}

export const MAP_PARAMS: Record<string, JsonSchema> = {
  sign: {
    enum: ['absolute', 'positive', 'negative', 'all'],
    default: 'absolute',
    description: 'Which attributions the map shows (Captum visualize_image_attr sign): absolute (|x|, Captum’s default), positive, negative (shown as positive values), all (signed, map in [−1, 1]).',
  },
  normalize: {
    enum: ['captum', 'minmax'],
    default: 'captum',
    description: 'captum: channel sum, divided by the value where the sorted cumulative sum reaches 100 − outlierPercent % (Captum _normalize_attr), clipped; minmax: channel sum scaled to [0, 1] ([−1, 1] by the largest magnitude for sign all).',
  },
  outlierPercent: { type: 'number', minimum: 0, maximum: 100, default: 2, description: 'Captum’s outlier_perc for normalize: captum.' },
};

/**
 * Captum's _cumulative_sum_threshold: the first value of the ascending sort
 * at which the float32 cumulative sum reaches percentile % of the total.
 * `values` must be non-negative.
 */
export function cumulativeSumThreshold(values: Float32Array, percentile: number): number {
  if (values.length === 0) return 0;
  const sorted = Float32Array.from(values).sort();
  const sums = new Float32Array(sorted.length);
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sums[i] = sum = Math.fround(sum + sorted[i]);
  // numpy ≥ 2 keeps float32 for `cum_sums[-1] * 0.01 * percentile`.
  const target = Math.fround(Math.fround(sums[sums.length - 1] * 0.01) * percentile);
  const index = sums.findIndex((s) => s >= target);
  return sorted[index < 0 ? sorted.length - 1 : index];
}

/** Channel sum with the sign applied, [n, h, w]. */
function signed(attributions: tf.Tensor4D, sign: MapSign): tf.Tensor3D {
  return tf.tidy(() => {
    const combined = tf.sum(attributions, 3) as tf.Tensor3D;
    if (sign === 'positive') return tf.relu(combined);
    if (sign === 'negative') return tf.neg(tf.relu(tf.neg(combined)));
    if (sign === 'absolute') return tf.abs(combined);
    return combined;
  });
}

/**
 * The maps of a batch of attributions [n, h, w, c] → [n, h, w], and the
 * images whose map is all zeros because there was nothing to scale by
 * (Captum refuses those).
 */
export function attributionMaps(attributions: tf.Tensor4D, options: MapOptions): { maps: tf.Tensor3D; refused: number[] } {
  const values = signed(attributions, options.sign);
  const [n, h, w] = values.shape;
  const refused: number[] = [];
  try {
    if (options.normalize === 'minmax') {
      return tf.tidy(() => {
        // Negative attributions are shown by their magnitude, as Captum's `negative` map does.
        const flat = tf.reshape(options.sign === 'negative' ? tf.neg(values) : values, [n, h * w]);
        const low = options.sign === 'all' ? tf.zeros([n, 1]) : tf.min(flat, 1, true);
        const high = options.sign === 'all' ? tf.max(tf.abs(flat), 1, true) : tf.max(flat, 1, true);
        const range = tf.sub(high, low);
        const ranges = range.dataSync();
        ranges.forEach((r, i) => r > 0 || refused.push(i));
        const safe = tf.where(tf.greater(range, 0), range, tf.onesLike(range));
        // (+ 0 turns the −0 of a zeroed negative value into 0.)
        const scaled = tf.add(tf.mul(tf.div(tf.sub(flat, low), safe), tf.cast(tf.greater(range, 0), 'float32')), 0);
        return { maps: tf.reshape(scaled, [n, h, w]) as tf.Tensor3D, refused };
      });
    }
    const data = (options.sign === 'negative' || options.sign === 'all' ? tf.tidy(() => tf.abs(values)) : values.clone());
    const all = data.dataSync() as Float32Array;
    data.dispose();
    const thresholds = Array.from({ length: n }, (_, i) => {
      const t = cumulativeSumThreshold(all.subarray(i * h * w, (i + 1) * h * w), 100 - options.outlierPercent);
      if (t === 0) refused.push(i);
      return options.sign === 'negative' ? -t : t;
    });
    return tf.tidy(() => {
      const scale = tf.tensor3d(thresholds.map((t) => (t === 0 ? 1 : t)), [n, 1, 1]);
      const keep = tf.tensor3d(thresholds.map((t) => (t === 0 ? 0 : 1)), [n, 1, 1]);
      return { maps: tf.add(tf.mul(tf.clipByValue(tf.div(values, scale), -1, 1), keep), 0) as tf.Tensor3D, refused };
    });
  } finally {
    values.dispose();
  }
}

// ---------------------------------------------------------------- defining

export interface AttributionSpec {
  id: string;
  version: string;
  description: string;
  /** The method's own params (the map params and `target` are added). */
  params: Record<string, JsonSchema>;
  imagesPerBatch?(params: Params): number;
  /** Attributions like the input, [n, h, w, c], for the batch's targets; params come with their defaults filled in. */
  attribute(batch: ExplainBatch, params: Params): tf.Tensor4D | Promise<tf.Tensor4D>;
  /** Files the params name beyond baseline images (found by themselves: params whose schema is BASELINE_PARAM or a list of it); params come with their defaults filled in. */
  paramFiles?(params: Params, manifestDir: string): string[];
}

export interface AttributionExplainer extends TensorExplainer {
  /** The attribution alone, for explainers that wrap this one (SmoothGrad); params must be complete (see `withDefaults`). */
  attribute(batch: ExplainBatch, params: Params): Promise<tf.Tensor4D>;
  /** The params checked against the schema, defaults filled in; a UserError names what is wrong. */
  withDefaults(params: Params): Params;
  /** The files the params name (baseline images…), absolute: they key the explain task by content. */
  paramFiles(params: Params, manifestDir: string): string[];
}

/** Checks params against a schema, filling in defaults (ajv useDefaults); problems become one UserError. */
export function validator(id: string, schema: JsonSchema): (params: Params) => Params {
  let validate: ValidateFunction | undefined;
  return (params) => {
    validate ??= createAjv().compile(schema);
    const copy = structuredClone(params ?? {}) as Params;
    if (!validate(copy)) {
      const problems = problemsFromAjv(validate.errors).map((p) => `${p.pointer || '(params)'}: ${p.message}`);
      throw new UserError(`Invalid params for explainer ${id}: ${problems.join('; ')}.`, problems);
    }
    return copy;
  };
}

export function defineAttributionExplainer(spec: AttributionSpec): AttributionExplainer {
  const attribute = async (batch: ExplainBatch, params: Params) => spec.attribute(batch, params);
  let withDefaults: (params: Params) => Params = (p) => p;
  const plugin = defineTensorExplainer<Params>({
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: { properties: { ...spec.params, ...MAP_PARAMS } },
    imagesPerBatch: spec.imagesPerBatch ? (p) => spec.imagesPerBatch!(withDefaults(p)) : undefined,
    async explain(batch, raw) {
      const params = withDefaults(raw);
      const attributions = await attribute(batch, params);
      try {
        const options: MapOptions = { sign: params.sign as MapSign, normalize: params.normalize as MapOptions['normalize'], outlierPercent: params.outlierPercent as number };
        const { maps, refused } = attributionMaps(attributions, options);
        if (refused.length) {
          batch.warn(
            `${spec.id}: image(s) ${refused.join(', ')} of this batch have no ${options.sign === 'all' || options.sign === 'absolute' ? 'non-zero' : options.sign} attribution to scale the map by (Captum refuses to normalise them); their map is all zeros.`,
          );
        }
        return { maps, attributions };
      } catch (error) {
        attributions.dispose();
        throw error;
      }
    },
  });
  withDefaults = validator(spec.id, plugin.params);
  // Params that take a baseline (or a list of them) may name an image file, which the maps then depend on.
  const baselineParams = Object.entries(spec.params)
    .filter(([, schema]) => schema === BASELINE_PARAM || (schema as { items?: unknown }).items === BASELINE_PARAM)
    .map(([name]) => name);
  const paramFiles = (raw: Params, manifestDir: string): string[] => {
    const params = withDefaults(raw);
    const kinds = baselineParams.flatMap((name) => (Array.isArray(params[name]) ? (params[name] as Json[]) : [params[name]]));
    return [...baselineFiles(kinds, manifestDir, spec.id), ...(spec.paramFiles?.(params, manifestDir) ?? [])];
  };
  return Object.assign(plugin, { attribute, withDefaults, paramFiles });
}

// ---------------------------------------------------------------- randomness

/**
 * One seed per image, from the seed param and the image's own values: the
 * same image gets the same noise whichever batch it is in (a resumed sweep
 * batches the remaining images differently).
 */
export function imageSeeds(input: tf.Tensor4D, seed: number): number[] {
  const data = input.dataSync() as Float32Array;
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const n = input.shape[0];
  const size = bits.length / n;
  return Array.from({ length: n }, (_, i) => {
    let h = 0x811c9dc5 ^ seed;
    for (let k = i * size; k < (i + 1) * size; k++) h = Math.imul(h ^ bits[k], 0x01000193);
    return mixSeed(seed, h >>> 0);
  });
}

export const SEED_PARAM: JsonSchema = { type: 'integer', minimum: 0, default: 0, description: 'Seed of the random draws; the draws for an image depend only on it and the image itself, so the same params give the same maps.' };

// ---------------------------------------------------------------- baselines

const BASELINE_KINDS: Json[] = ['zeros', 'uniform', 'blurred'];

export const BASELINE_PARAM: JsonSchema = {
  anyOf: [{ enum: BASELINE_KINDS }, { type: 'number' }, { type: 'string', minLength: 1 }],
  default: 'zeros',
  description: 'Reference input: zeros (0 in the network’s input space, Captum’s default), a constant, uniform (uniform noise in [0, 1] pixel space, normalised as the model’s input; seeded), blurred (the image under a Gaussian blur of blurSigma pixels), or the path of an image file (preprocessed as the model’s input).',
};

export const BLUR_SIGMA_PARAM: JsonSchema = { type: 'number', exclusiveMinimum: 0, default: 10, description: 'Standard deviation in pixels of the Gaussian blur of a `blurred` baseline.' };

export const INTERNAL_BATCH_PARAM: JsonSchema = { type: 'integer', minimum: 1, default: 8, description: 'Inputs per forward (and backward) pass, as Captum’s internal_batch_size: bounds memory (8 keeps a 224×224 MobileNetV2 inside wasm’s 4 GiB heap), does not change the result.' };

/** The image files among baselines (strings other than zeros, uniform and blurred), resolved against `baseDir`; a MissingInputError names one that is absent. */
export function baselineFiles(kinds: Json[], baseDir: string, explainer: string): string[] {
  return kinds
    .filter((kind): kind is string => typeof kind === 'string' && !BASELINE_KINDS.includes(kind))
    .map((kind) => {
      const file = path.resolve(baseDir, kind);
      if (!existsSync(file) || !statSync(file).isFile()) {
        throw new MissingInputError(file, `Baseline image of ${explainer}`, 'a baseline is zeros, uniform, blurred, a number or the path of an image file relative to the manifest');
      }
      return file;
    });
}

/** Each image under a Gaussian blur (reflected borders), channel by channel. */
export function gaussianBlur(images: tf.Tensor4D, sigma: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w, c] = images.shape;
    const pass = (x: tf.Tensor4D, size: number, vertical: boolean): tf.Tensor4D => {
      const radius = Math.min(Math.ceil(3 * sigma), size - 1);
      if (radius <= 0) return x;
      const taps = Array.from({ length: 2 * radius + 1 }, (_, k) => Math.exp(-((k - radius) ** 2) / (2 * sigma * sigma)));
      const total = taps.reduce((a, b) => a + b, 0);
      const kernel = tf.tile(tf.tensor4d(taps.map((t) => t / total), vertical ? [2 * radius + 1, 1, 1, 1] : [1, 2 * radius + 1, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
      const padded = tf.mirrorPad(x, vertical ? [[0, 0], [radius, radius], [0, 0], [0, 0]] : [[0, 0], [0, 0], [radius, radius], [0, 0]], 'reflect');
      return tf.depthwiseConv2d(padded, kernel, 1, 'valid');
    };
    return pass(pass(images, h, true), w, false);
  });
}

/** The baseline the param names, like the batch's input; a `uniform` one draws from `seeds` (the images', see imageSeeds) or from `seed`. */
export async function baselineFor(kind: Json, batch: ExplainBatch, options: { seed?: number; seeds?: number[]; blurSigma?: number } = {}): Promise<tf.Tensor4D> {
  const { input, model } = batch;
  const [n, h, w, c] = input.shape;
  if (kind === 'zeros' || kind === undefined || kind === null) return tf.zerosLike(input);
  if (typeof kind === 'number') return tf.fill([n, h, w, c], kind) as tf.Tensor4D;
  if (kind === 'uniform') {
    const seeds = options.seeds ?? imageSeeds(input, options.seed ?? 0);
    return tf.tidy(() => normaliseUnit(tf.concat(seeds.map((seed) => tf.randomUniform([1, h, w, c], 0, 1, 'float32', seed)), 0) as tf.Tensor4D, model.preprocessing.normalisation));
  }
  if (kind === 'blurred') return gaussianBlur(input, options.blurSigma ?? 10);
  if (typeof kind !== 'string') throw new UserError(`baseline ${JSON.stringify(kind)} is not zeros, uniform, blurred, a number or an image path.`);
  const image = await readImage(path.resolve(batch.baseDir, kind));
  return tf.tidy(() => {
    const one = preprocessImages(rawTensor(image), { size: [h, w], normalisation: model.preprocessing.normalisation }, { bitDepth: image.bitDepth });
    if (one.shape[3] !== c) throw new UserError(`baseline image ${kind} gives ${one.shape[3]} channels; the model takes ${c}.`);
    return tf.tile(one, [n, 1, 1, 1]) as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------- gradients

/** ∂score/∂x for each row of x, the score of row i being its logit for class targets[i], under the backward rule given (the caller disposes it). */
export async function inputGradient(model: LoadedModel, x: tf.Tensor4D, targets: readonly number[], rule: BackwardRule = 'plain'): Promise<tf.Tensor4D> {
  const { layers, input } = await model.engine.gradients(x, targets, { input: true, rule });
  tf.dispose(layers.flatMap((layer) => [layer.activations, layer.gradients]));
  if (!input) throw new Error(`the ${model.engine.info.engine} engine returned no input gradient`);
  return input;
}

/** Each row's logit for its class targets[i] (a final softmax left out), without a backward pass. */
export async function targetLogits(model: LoadedModel, x: tf.Tensor4D, targets: readonly number[]): Promise<Float32Array> {
  const logits = await model.engine.scores(x);
  try {
    const [rows, classes] = logits.shape;
    if (targets.length !== rows) throw new UserError(`${targets.length} target class(es) given for a batch of ${rows} image(s); give one per image.`);
    const bad = targets.find((t) => !Number.isInteger(t) || t < 0 || t >= classes);
    if (bad !== undefined) throw new UserError(`Target class ${bad} does not exist: the model scores ${classes} classes (0…${classes - 1}).`);
    const all = logits.dataSync();
    return Float32Array.from(targets, (t, i) => all[i * classes + t]);
  } finally {
    logits.dispose();
  }
}

// ---------------------------------------------------------------- batching

/** Calls `fn(start, count)` for consecutive chunks of `total` rows. */
export async function inChunks(total: number, size: number, fn: (start: number, count: number) => void | Promise<void>): Promise<void> {
  for (let start = 0; start < total; start += size) await fn(start, Math.min(size, total - start));
}

/** Adds `delta` into the running `sum` (created on first use), disposing the old sum and delta. */
export function accumulate<T extends tf.Tensor>(sum: T | undefined, delta: T): T {
  if (sum === undefined) return delta;
  const next = tf.add(sum, delta) as T;
  sum.dispose();
  delta.dispose();
  return next;
}
