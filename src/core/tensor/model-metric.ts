/**
 * Turns a perturbation measure — a function from a batch of network inputs,
 * their saliency maps and predicted classes to one row of values per image —
 * into a metric plugin that calls the model (`needsModel`, so the score stage
 * runs it in the gpu pool). It loads the trained model once, reads each test
 * image's map from the explain artifact and its network input through the
 * model's own preprocessing, and feeds the measure batches of images. It knows
 * no particular measure; each lives in one file under src/plugins/metrics.
 *
 * Per batch of 16 images it runs the model once on the original input (the
 * measure gets that output and the argmax classes), brings maps of another
 * size to the input's by bilinear resize (one warning), and turns the rows
 * of images whose map has no positive (or a non-finite) value into nulls,
 * with one warning per task rather than per image.
 *
 * The same measure runs outside a sweep (`salgrid score`, the golden tests)
 * through `scoreWithModel`, on any source of inputs and maps.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import type { JsonSchema, LoadedModel, MetricPlugin, Params, ScoreContext, ScoreRow, ScoreValue } from '../plugins/types.ts';
import type { ModelEngine } from './engine.ts';
import { mapPath } from '../stages/maps.ts';
import { ImageBatches } from './image-batches.ts';
import { readNpy, type NpyArray } from '../io/npy.ts';

/** Images per call of a measure's `score`: the same for every param, so a sweep's cells batch alike. */
export const MODEL_METRIC_BATCH = 16;
/** Most network inputs in one forward pass when a measure scores many perturbed copies. */
export const FORWARD_CHUNK = 64;

/** How a class is scored: its softmax probability (default) or its logit. */
export type ClassScore = 'softmax' | 'logit';

export const SCORE_PARAM: JsonSchema = {
  enum: ['softmax', 'logit'],
  default: 'softmax',
  description: 'What is compared: the softmax probability (default) or the logit of the class predicted on the original image.',
};

export interface ModelMetricBatch {
  model: LoadedModel;
  /** The network's input, [n, h, w, c]. */
  input: tf.Tensor4D;
  /** The images' saliency maps at the input's size, [n, h, w], as they were stored (not rescaled). */
  maps: tf.Tensor3D;
  /** The model's output for the original input, [n, classes] (owned by the caller: read it, do not dispose it). */
  output: tf.Tensor2D;
  /** The class predicted on the original input (argmax of the output), per image. */
  predicted: number[];
  warn(message: string): void;
}

export type MetricValues = Record<string, ScoreValue>;

export interface ModelMetricSpec<P extends Params = Params> {
  id: string;
  version: string;
  description: string;
  /** Params schema (an object schema with defaults). */
  params: JsonSchema;
  /** One row of values per image of the batch, in order. Tensors it makes must be freed (tf.tidy around per-image math, try/finally around the engine's calls). */
  score(batch: ModelMetricBatch, params: P): MetricValues[] | Promise<MetricValues[]>;
}

export interface ModelMetric<P extends Params = Params> extends MetricPlugin<P> {
  needsModel: true;
  /** The measure's spec, for running it outside a sweep with `scoreWithModel`. */
  spec: ModelMetricSpec<P>;
}

/** A map as read from a file: [h, w] values. */
export interface MapArray {
  data: Float32Array;
  height: number;
  width: number;
}

/** Where the network inputs come from: a batch of the inputs at these indices, [n, h, w, c] (the caller disposes it). */
export interface InputSource {
  count: number;
  input(indices: readonly number[]): Promise<tf.Tensor4D>;
}

/** A `.npy` map as [h, w] values ([h, w] or [h, w, 1] arrays); `name` is what errors call it. */
export function mapFromNpy(array: NpyArray, name: string): MapArray {
  const shape = array.shape.length === 3 && array.shape[2] === 1 ? array.shape.slice(0, 2) : array.shape;
  if (shape.length !== 2) throw new UserError(`${name} holds an array of shape (${array.shape.join(', ')}), not a saliency map [height, width].`);
  const data = array.data instanceof Float32Array ? array.data : Float32Array.from(array.data);
  return { data, height: shape[0], width: shape[1] };
}

/** Reads the map `.npy` of one image. */
export async function readMap(file: string): Promise<MapArray> {
  if (!existsSync(file)) throw new UserError(`the saliency map ${file} is missing; re-run the explain stage for this cell.`);
  return mapFromNpy(await readNpy(file), file);
}

/** The model's output for `input` (a final softmax kept), computed in forward passes of at most `chunk` inputs, [m, classes]. */
export async function forward(engine: ModelEngine, input: tf.Tensor4D, chunk = FORWARD_CHUNK): Promise<tf.Tensor2D> {
  const m = input.shape[0];
  if (m <= chunk) return engine.scores(input, { beforeSoftmax: false });
  const parts: tf.Tensor2D[] = [];
  try {
    for (let start = 0; start < m; start += chunk) {
      const count = Math.min(chunk, m - start);
      const slice = tf.slice(input, [start, 0, 0, 0], [count, -1, -1, -1]);
      try {
        parts.push(await engine.scores(slice, { beforeSoftmax: false }));
      } finally {
        slice.dispose();
      }
    }
    return tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

/** Whether the model's last layer is a softmax, so that its output is probabilities already. */
export function outputsProbabilities(model: tf.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  return (last.getConfig() as { activation?: unknown }).activation === 'softmax' || last.getClassName() === 'Softmax';
}

/**
 * The score of class `classes[i]` in row i of a model's `output` [m, classes],
 * as plain numbers: softmax probability or logit. A model whose output is a
 * softmax already is not softmaxed twice, and has no logits.
 */
export function scoresFromOutput(model: LoadedModel, output: tf.Tensor2D, classes: readonly number[], score: ClassScore): Float32Array {
  if (classes.length !== output.shape[0]) throw new Error(`classScores: ${classes.length} classes for ${output.shape[0]} outputs`);
  const probabilities = model.outputsProbabilities;
  if (score === 'logit' && probabilities) throw new UserError(`the model ends in a softmax, so its logits are not available; use score: softmax.`);
  const picked = tf.tidy(() => {
    const values = score === 'softmax' && !probabilities ? tf.softmax(output) : output;
    const mask = tf.oneHot(tf.tensor1d(Array.from(classes), 'int32'), output.shape[1]);
    return tf.sum(tf.mul(values, mask), 1);
  });
  const data = picked.dataSync() as Float32Array;
  picked.dispose();
  return Float32Array.from(data);
}

/** The score of class `classes[i]` for row i of `input` ([m, h, w, c]): `scoresFromOutput` of the model's output, in forward passes of at most `chunk` inputs. */
export async function classScores(model: LoadedModel, input: tf.Tensor4D, classes: readonly number[], score: ClassScore, chunk = FORWARD_CHUNK): Promise<Float32Array> {
  const output = await forward(model.engine, input, chunk);
  try {
    return scoresFromOutput(model, output, classes, score);
  } finally {
    output.dispose();
  }
}

/** Argmax of each row of a model's output. */
export function argmaxRows(output: tf.Tensor2D): number[] {
  const argmax = tf.argMax(output, 1);
  const classes = Array.from(argmax.dataSync());
  argmax.dispose();
  return classes;
}

/** `maps` at the network's size [h, w] (bilinear with half-pixel centres where a map's size differs), as one [n, h, w] tensor. */
export function mapsTensor(maps: readonly MapArray[], height: number, width: number): tf.Tensor3D {
  return tf.tidy(() =>
    tf.stack(
      maps.map((map) => {
        const t = tf.tensor2d(map.data, [map.height, map.width], 'float32');
        if (map.height === height && map.width === width) return t;
        return tf.squeeze(tf.image.resizeBilinear(tf.reshape(t, [1, map.height, map.width, 1]) as tf.Tensor4D, [height, width], false, true), [0, 3]);
      }),
    ) as tf.Tensor3D,
  );
}

export interface ScoreOptions {
  warn?(message: string): void;
  progress?(done: number, total: number): void;
  signal?: AbortSignal;
  /** Images per call of the measure (default MODEL_METRIC_BATCH). */
  batchSize?: number;
  /** What warnings call input i (its id); default its index. */
  names?: readonly string[];
}

export type MapProblem = 'no-positive-value' | 'non-finite';

const PROBLEM_TEXT: Record<MapProblem, string> = {
  'no-positive-value': 'have a map with no positive value',
  'non-finite': 'have a map with non-finite values (NaN or ±Infinity)',
};

/** Why a map cannot be scored (m = map / max(map) is undefined), or undefined when it can. */
export function mapProblem(data: ArrayLike<number>): MapProblem | undefined {
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isFinite(v)) return 'non-finite';
    if (v > max) max = v;
  }
  return max > 0 ? undefined : 'no-positive-value';
}

/**
 * m = max(map, 0) / max(map) per image, [n, h, w] → [n, h, w] in [0, 1]: the
 * unquantised normalised map of the perturbation measures. Negative values
 * (evidence against the class, from signed attributions) count as 0, so that
 * multiplying the input by m never flips its sign.
 */
export function unitMaps(maps: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => tf.div(tf.relu(maps), tf.max(maps, [1, 2], true)) as tf.Tensor3D);
}

/**
 * Runs a measure over `inputs` and their `maps` (map i belongs to input i):
 * one row of values per image, in order. Maps of another size than the
 * network's input are resized to it (one warning).
 */
export async function scoreWithModel<P extends Params>(
  spec: ModelMetricSpec<P>,
  model: LoadedModel,
  inputs: InputSource,
  maps: (index: number) => Promise<MapArray>,
  params: P,
  options: ScoreOptions = {},
): Promise<MetricValues[]> {
  const warn = options.warn ?? (() => {});
  const batchSize = Math.max(1, options.batchSize ?? MODEL_METRIC_BATCH);
  const rows: MetricValues[] = [];
  let warnedSize = false;
  const problems = new Map<MapProblem, string[]>();
  for (let start = 0; start < inputs.count; start += batchSize) {
    if (options.signal?.aborted) throw options.signal.reason;
    const indices = Array.from({ length: Math.min(batchSize, inputs.count - start) }, (_, i) => start + i);
    const input = await inputs.input(indices);
    let mapBatch: tf.Tensor3D | undefined;
    let output: tf.Tensor2D | undefined;
    try {
      const [, h, w] = input.shape;
      const arrays = await Promise.all(indices.map((i) => maps(i)));
      const odd = arrays.find((map) => map.height !== h || map.width !== w);
      if (odd && !warnedSize) {
        warnedSize = true;
        warn(`saliency maps of ${odd.height}×${odd.width} pixels were resized (bilinear) to the network's input of ${h}×${w} to score ${spec.id}.`);
      }
      mapBatch = mapsTensor(arrays, h, w);
      output = await forward(model.engine, input);
      const predicted = argmaxRows(output);
      const result = await spec.score({ model, input, maps: mapBatch, output, predicted, warn }, params);
      if (result.length !== indices.length) throw new Error(`metric ${spec.id} returned ${result.length} rows for ${indices.length} images`);
      arrays.forEach((map, k) => {
        const problem = mapProblem(map.data);
        if (!problem) return;
        // Unusable maps give nulls, whatever the measure made of them.
        for (const column of Object.keys(result[k])) result[k][column] = null;
        problems.set(problem, [...(problems.get(problem) ?? []), options.names?.[indices[k]] ?? String(indices[k])]);
      });
      rows.push(...result);
    } finally {
      input.dispose();
      mapBatch?.dispose();
      output?.dispose();
    }
    options.progress?.(rows.length, inputs.count);
  }
  // One warning per kind of problem and task, not one per image.
  for (const [problem, names] of problems) {
    const examples = names.slice(0, 3).join(', ') + (names.length > 3 ? ', …' : '');
    warn(`${spec.id}: ${names.length} of ${inputs.count} images ${PROBLEM_TEXT[problem]} (${examples}); their ${spec.id} measures are null.`);
  }
  return rows;
}

/** Network inputs held in one array [n, h, w, c] (a preprocessed `.npy`, the golden inputs). */
export function arrayInputs(data: Float32Array, shape: readonly [number, number, number, number]): InputSource {
  const [count, h, w, c] = shape;
  const per = h * w * c;
  return {
    count,
    input: async (indices) => {
      const batch = new Float32Array(indices.length * per);
      indices.forEach((index, k) => batch.set(data.subarray(index * per, (index + 1) * per), k * per));
      return tf.tensor4d(batch, [indices.length, h, w, c]);
    },
  };
}

/** Image files through the model's preprocessing. */
export function imageInputs(files: readonly string[], model: LoadedModel): InputSource {
  const batches = new ImageBatches(files, model.preprocessing);
  return { count: files.length, input: (indices) => batches.input(indices) };
}

/** A metric plugin from a measure: needsModel, one row per test item with its id first. */
export function defineModelMetric<P extends Params>(spec: ModelMetricSpec<P>): ModelMetric<P> {
  const score = async (ctx: ScoreContext<P>): Promise<ScoreRow[]> => {
    if (!ctx.model) throw new Error(`metric ${spec.id} needs the model, but the score stage gave none`);
    const architecture = ctx.model.plugin;
    if (!architecture.load) throw new UserError(`architecture ${architecture.id} cannot be loaded for ${spec.id} (its plugin has no load()).`);
    const model = await architecture.load(ctx.model.dir);
    try {
      const items = ctx.items;
      const values = await scoreWithModel(
        spec,
        model,
        imageInputs(items.map((item) => ctx.data.resolve(item.image)), model),
        (i) => readMap(mapPath(ctx.mapsDir, items[i].id)),
        ctx.params,
        { warn: ctx.warn, signal: ctx.signal, progress: (done, total) => ctx.progress(done, total, 'images'), names: items.map((item) => item.id) },
      );
      return items.map((item, i) => ({ id: item.id, ...values[i] }));
    } finally {
      model.engine.dispose();
      model.model?.dispose();
    }
  };
  return {
    kind: 'metric',
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: { ...spec.params, type: 'object', additionalProperties: false },
    needsModel: true,
    score,
    spec,
  };
}
