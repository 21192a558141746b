/**
 * Turns a saliency method — a function from a batch of network inputs and
 * target classes to maps — into an explainer plugin: it loads the trained
 * model, feeds the fold's test images through the model's preprocessing in
 * batches, resolves each image's target class, and writes one map per image
 * (plus the raw attribution and a JET preview) as it goes, skipping images a
 * killed attempt already finished. It knows no particular method; each lives
 * in one file under src/plugins/explainers.
 *
 * The same method runs outside a sweep (`salgrid explain`, the golden tests)
 * through `explainInput`.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { nearestNames } from '../manifest/suggest.ts';
import type { CamLayers, DatasetItem, ExplainContext, ExplainerPlugin, JsonSchema, LoadedModel, Params, TfjsLoadedModel } from '../plugins/types.ts';
import type { ModelEngine } from './engine.ts';
import { createEngine } from './engines.ts';
import { outputsProbabilities } from './model-metric.ts';
import { attributionFile, mapFile, previewFile } from '../stages/maps.ts';
import { ImageBatches } from './image-batches.ts';
import { encodeNpy } from '../io/npy.ts';
import type { Preprocessing } from './preprocess.ts';
import { writeJetOverlay } from './previews.ts';

/** `predicted` (argmax logit, the references' default), `label` (the image's true class), a class index or a class name. */
export type TargetParam = 'predicted' | 'label' | number | string;

export interface ExplainBatch {
  model: LoadedModel;
  /** The network's input, [n, h, w, c]. */
  input: tf.Tensor4D;
  /** The class explained for each image. */
  targets: number[];
  warn(message: string): void;
  /** Folder that relative paths in params (e.g. a baseline image) resolve against: the manifest's, or the working folder outside a sweep. */
  baseDir: string;
}

export interface ExplainOutput {
  /** Final maps at the input's size, [n, h, w]. */
  maps: tf.Tensor3D;
  /** Raw attributions, like the input [n, h, w, c] (attribution methods). */
  attributions?: tf.Tensor4D;
}

export interface TensorExplainerSpec<P extends Params = Params> {
  id: string;
  version: string;
  description: string;
  /** Params schema; `target` is added to it (see TARGET_PARAM). */
  params: JsonSchema;
  /** Images per call of `explain` (default 8); methods that batch internally (ScoreCAM) may ask for fewer. */
  imagesPerBatch?(params: P): number;
  /** Maps for one batch. Tensors it returns are disposed by the caller; everything else must be freed (tf.tidy). */
  explain(batch: ExplainBatch, params: P): ExplainOutput | Promise<ExplainOutput>;
}

export const TARGET_PARAM: JsonSchema = {
  anyOf: [{ enum: ['predicted', 'label'] }, { type: 'integer', minimum: 0 }, { type: 'string', minLength: 1 }],
  default: 'predicted',
  description: 'Class to explain: predicted (argmax logit, the reference default), label (the true class), a class index or a class name.',
};

export interface TensorExplainer<P extends Params = Params> extends ExplainerPlugin {
  /** Maps for inputs outside a sweep; `labels` are needed only for `target: label`. */
  explainInput(model: LoadedModel, input: tf.Tensor4D, params: P, options?: { labels?: number[]; warn?: (message: string) => void; baseDir?: string }): Promise<{ maps: Float32Array[]; attributions?: Float32Array[]; targets: number[] }>;
}

/** Argmax of the model's output per image. */
export async function predictedClasses(engine: ModelEngine, input: tf.Tensor4D): Promise<number[]> {
  // The model's own output (a final softmax kept), as the references take the argmax of.
  const output = await engine.scores(input, { beforeSoftmax: false });
  try {
    const argmax = tf.argMax(output, 1);
    const classes = Array.from(argmax.dataSync());
    argmax.dispose();
    return classes;
  } finally {
    output.dispose();
  }
}

/** The class index each image is explained for. */
export async function resolveTargets(target: TargetParam, model: LoadedModel, input: tf.Tensor4D, labels?: number[]): Promise<number[]> {
  const n = input.shape[0];
  if (target === 'predicted') return predictedClasses(model.engine, input);
  if (target === 'label') {
    if (!labels) throw new UserError('target: label needs the images’ true classes, which only a sweep knows; give a class index or name instead.');
    return labels;
  }
  const classes = model.classes;
  if (typeof target === 'number') {
    if (!Number.isInteger(target) || target < 0 || target >= classes.length) throw new UserError(`target ${target} is not a class of this model: it has ${classes.length} classes (0…${classes.length - 1}).`);
    return new Array(n).fill(target);
  }
  const index = classes.indexOf(target);
  if (index < 0) throw new UserError(`target "${target}" is not a class of this model; its classes are ${classes.join(', ')}.`);
  return new Array(n).fill(index);
}

/**
 * A LoadedModel for a bare tfjs layers-model (no model card): layer names
 * are the tfjs names, no default CAM target, no preprocessing for images.
 */
export function bareLoadedModel(model: tf.LayersModel, options: { classes?: string[]; preprocessing?: Preprocessing } = {}): TfjsLoadedModel {
  const classes = options.classes ?? Array.from({ length: (model.outputs[0].shape as number[]).at(-1) ?? 0 }, (_, i) => String(i));
  const camLayers = (name: string): CamLayers => {
    if (!model.layers.some((layer) => layer.name === name)) {
      const near = nearestNames(name, model.layers.map((layer) => layer.name));
      throw new UserError(`The model has no layer named "${name}"; nearest: ${near.join(', ')}.`);
    }
    return { module: name, gradient: name, activation: name };
  };
  const convLayers = model.layers.filter((layer) => ['Conv2D', 'DepthwiseConv2D'].includes(layer.getClassName())).map((layer) => layer.name);
  const lastConv = convLayers.at(-1);
  // Without an architecture's recommendation, the last convolution is the conventional CAM target.
  const target = lastConv ? camLayers(lastConv) : { module: '', gradient: '', activation: '' };
  return {
    name: model.name,
    model,
    outputsProbabilities: outputsProbabilities(model),
    classes,
    preprocessing: options.preprocessing ?? { size: [(model.inputs[0].shape[1] as number) ?? 0, (model.inputs[0].shape[2] as number) ?? 0], normalisation: { kind: 'unit' } },
    target,
    camLayers,
    convLayers,
    engine: createEngine(model),
  };
}

function toArrays(tensor: tf.Tensor | undefined): Float32Array[] | undefined {
  if (!tensor) return undefined;
  const n = tensor.shape[0];
  const all = tensor.dataSync() as Float32Array;
  const size = all.length / n;
  return Array.from({ length: n }, (_, i) => all.slice(i * size, (i + 1) * size));
}

export function defineTensorExplainer<P extends Params>(spec: TensorExplainerSpec<P>): TensorExplainer<P> {
  const params: JsonSchema = {
    ...spec.params,
    type: 'object',
    additionalProperties: false,
    properties: { target: TARGET_PARAM, ...((spec.params.properties as Record<string, JsonSchema>) ?? {}) },
  };
  const perBatch = (p: P) => Math.max(1, spec.imagesPerBatch?.(p) ?? 8);

  const runBatch = async (model: LoadedModel, input: tf.Tensor4D, p: P, labels: number[] | undefined, warn: (m: string) => void, baseDir: string) => {
    const targets = await resolveTargets((p.target ?? 'predicted') as TargetParam, model, input, labels);
    const output = await spec.explain({ model, input, targets, warn, baseDir }, p);
    try {
      const [n, h, w] = input.shape;
      if (output.maps.shape.join() !== [n, h, w].join()) {
        throw new Error(`explainer ${spec.id} returned maps of shape [${output.maps.shape.join(', ')}] for inputs [${input.shape.join(', ')}]`);
      }
      return { targets, maps: toArrays(output.maps)!, attributions: toArrays(output.attributions) };
    } finally {
      tf.dispose([output.maps, ...(output.attributions ? [output.attributions] : [])]);
    }
  };

  const explainInput: TensorExplainer<P>['explainInput'] = async (model, input, p, options = {}) => {
    const warn = options.warn ?? (() => {});
    const maps: Float32Array[] = [];
    const attributions: Float32Array[] = [];
    const targets: number[] = [];
    const size = perBatch(p);
    for (let start = 0; start < input.shape[0]; start += size) {
      const count = Math.min(size, input.shape[0] - start);
      const batch = tf.slice(input, [start, 0, 0, 0], [count, -1, -1, -1]);
      try {
        const result = await runBatch(model, batch, p, options.labels?.slice(start, start + count), warn, options.baseDir ?? process.cwd());
        maps.push(...result.maps);
        if (result.attributions) attributions.push(...result.attributions);
        targets.push(...result.targets);
      } finally {
        batch.dispose();
      }
    }
    return { maps, attributions: attributions.length ? attributions : undefined, targets };
  };

  const explain = async (ctx: ExplainContext): Promise<void> => {
    const p = ctx.params as P;
    const architecture = ctx.model.plugin;
    if (!architecture.load) throw new UserError(`architecture ${architecture.id} cannot be loaded for explaining (its plugin has no load()).`);
    const model = await architecture.load(ctx.model.dir);
    try {
      const todo = ctx.items.filter((item) => !existsSync(path.join(ctx.out, mapFile(item.id))));
      let done = ctx.items.length - todo.length;
      const images = new ImageBatches(todo.map((item) => ctx.data.resolve(item.image)), model.preprocessing);
      const [h, w] = model.preprocessing.size;
      await images.forEachBatch(perBatch(p), async (input, indices) => {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const items: DatasetItem[] = indices.map((i) => todo[i]);
        const result = await runBatch(model, input, p, items.map((item) => item.label), ctx.warn, ctx.manifestDir);
        for (const [k, item] of items.entries()) {
          // Preview and attribution first, the map last: an image counts as done once its map exists.
          // The overlay uses the file ImageBatches already decoded for the input.
          await writeJetOverlay(path.join(ctx.out, previewFile(item.id)), result.maps[k], w, h, await images.image(indices[k]));
          if (result.attributions) {
            const channels = result.attributions[k].length / (h * w);
            await ctx.writeFile(attributionFile(item.id), encodeNpy({ dtype: 'float32', shape: [h, w, channels], data: result.attributions[k] }));
          }
          await ctx.writeFile(mapFile(item.id), encodeNpy({ dtype: 'float32', shape: [h, w], data: result.maps[k] }));
          ctx.progress(++done, ctx.items.length, 'images');
        }
      });
    } finally {
      model.engine.dispose();
      model.model?.dispose();
    }
  };

  return { kind: 'explainer', id: spec.id, version: spec.version, description: spec.description, params, explain, explainInput };
}
