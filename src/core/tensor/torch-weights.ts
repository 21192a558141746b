/**
 * Copies a PyTorch state dict into a tfjs layers-model whose layers are named
 * after the torch modules they mirror. Shared by the architecture plugins
 * (MobileNetV2, DenseNet, …): each builds its network with torch-derived
 * names, and this module turns torch's weight layouts into tfjs's.
 *
 * Layout facts: torch convolutions are [out, in, kh, kw] (tfjs [kh, kw, in,
 * out]); depthwise ones [C, 1, kh, kw] (tfjs [kh, kw, C, 1]); Linear is
 * [out, in] (tfjs Dense [in, out]); batch norm's weight / bias / running_mean /
 * running_var are tfjs's gamma / beta / moving_mean / moving_variance.
 */
import { nearestNames } from '../manifest/suggest.ts';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { toFloat32, type StateDict } from '../io/pytorch-state-dict.ts';
import type { StateDictEntry } from '../io/pytorch-state-dict-write.ts';
import { inversePermutation, permute } from './permutation.ts';

/**
 * tfjs layer names may not contain '.', so a torch module path becomes a
 * layer name with '_' in its place. torchvision's module names contain no '_',
 * which keeps the mapping reversible; a path that does is refused rather than
 * silently mapped to a name that would read back differently.
 */
export function tfjsName(torchPath: string): string {
  if (torchPath.includes('_')) throw new Error(`torch module path ${torchPath} contains '_', which the layer-name mapping reserves for '.'`);
  return torchPath.replaceAll('.', '_');
}

export function torchName(tfjsLayerName: string): string {
  return tfjsLayerName.replaceAll('_', '.');
}

/** How one tfjs weight is found in the state dict, in torch's terms. */
interface TorchParam {
  key: string;
  /** The shape torch stores it with. */
  torchShape: number[];
  /** Axis order turning torch's layout into tfjs's (undefined: same layout). */
  perm?: number[];
}

function torchParams(layer: tf.layers.Layer): TorchParam[] {
  const prefix = torchName(layer.name);
  const shapes = layer.weights.map((w) => w.shape as number[]);
  const className = layer.getClassName();
  switch (className) {
    case 'Conv2D': {
      const [kh, kw, cin, cout] = shapes[0];
      const params: TorchParam[] = [{ key: `${prefix}.weight`, torchShape: [cout, cin, kh, kw], perm: [2, 3, 1, 0] }];
      if (shapes.length > 1) params.push({ key: `${prefix}.bias`, torchShape: [cout] });
      return params;
    }
    case 'DepthwiseConv2D': {
      const [kh, kw, channels, multiplier] = shapes[0];
      const params: TorchParam[] = [{ key: `${prefix}.weight`, torchShape: [channels * multiplier, 1, kh, kw], perm: [2, 3, 0, 1] }];
      if (shapes.length > 1) params.push({ key: `${prefix}.bias`, torchShape: [channels * multiplier] });
      return params;
    }
    case 'Dense': {
      const [cin, cout] = shapes[0];
      const params: TorchParam[] = [{ key: `${prefix}.weight`, torchShape: [cout, cin], perm: [1, 0] }];
      if (shapes.length > 1) params.push({ key: `${prefix}.bias`, torchShape: [cout] });
      return params;
    }
    case 'BatchNormalization': {
      if (shapes.length !== 4) throw new Error(`batch norm ${layer.name} must have scale and center on to take torch weights`);
      const [channels] = shapes[0];
      return ['weight', 'bias', 'running_mean', 'running_var'].map((name) => ({ key: `${prefix}.${name}`, torchShape: [channels] }));
    }
    default:
      throw new Error(`layer ${layer.name} (${className}) has weights but no torch counterpart is known`);
  }
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export interface TorchImportOptions {
  /** Names the network in messages, e.g. "this MobileNetV2 (widthMult 1, numClasses 1000)". */
  what: string;
  /** Appended to every mismatch message: which constructor arguments would fit the file. */
  hint: string;
  /** State-dict keys with no place in the model that are fine to skip (num_batches_tracked always is). */
  ignore?: (key: string) => boolean;
}

/**
 * Loads every weighted layer of `model` from `state`, torch-style strict:
 * a missing, mis-shaped or left-over parameter is a UserError and nothing
 * is written, so a failed import never leaves a half-loaded model.
 */
export function importTorchWeights(model: tf.LayersModel, state: StateDict, options: TorchImportOptions): void {
  const { what, hint, ignore = () => false } = options;
  const writes: Array<{ layer: tf.layers.Layer; values: Array<{ data: Float32Array; shape: number[] }> }> = [];
  const used = new Set<string>();
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const params = torchParams(layer);
    const values = params.map((param, i) => {
      const tensor = state.get(param.key);
      if (tensor === undefined) {
        throw new UserError(`The state dict has no parameter ${param.key}, which ${what} needs with shape ${shapeText(param.torchShape)}; ${hint}`);
      }
      const expected = param.torchShape;
      if (tensor.shape.length !== expected.length || tensor.shape.some((d, axis) => d !== expected[axis])) {
        throw new UserError(`Parameter ${param.key} has shape ${shapeText(tensor.shape)} in the state dict, but ${what} expects ${shapeText(expected)}; ${hint}`);
      }
      used.add(param.key);
      const data = toFloat32(tensor);
      return { data: param.perm ? permute(data, tensor.shape, param.perm) : data, shape: layer.weights[i].shape as number[] };
    });
    writes.push({ layer, values });
  }
  const extra = state.names.filter((key) => !used.has(key) && !key.endsWith('.num_batches_tracked') && !ignore(key));
  if (extra.length > 0) {
    const listed = extra.slice(0, 5).join(', ') + (extra.length > 5 ? `, … (${extra.length} in all)` : '');
    throw new UserError(`The state dict has parameters ${what} has no place for: ${listed}; ${hint}`);
  }
  for (const { layer, values } of writes) {
    const tensors = values.map(({ data, shape }) => tf.tensor(data, shape, 'float32'));
    // Variables keep their own reference to the assigned data, so ours can go.
    layer.setWeights(tensors);
    tf.dispose(tensors);
  }
}

/**
 * The model's weights as a torchvision state dict: every weighted layer's
 * parameters under their torch keys, in torch's layouts, and each batch
 * norm's `num_batches_tracked` (the training steps it has seen in train
 * mode; 0 where unknown), the inverse of importTorchWeights.
 */
export function exportTorchWeights(model: tf.LayersModel, options: { numBatchesTracked?: number } = {}): StateDictEntry[] {
  const entries: StateDictEntry[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const params = torchParams(layer);
    params.forEach((param, i) => {
      const weight = layer.weights[i];
      const data = Float32Array.from(weight.read().dataSync() as Float32Array);
      entries.push({ key: param.key, shape: param.torchShape, data: param.perm ? permute(data, weight.shape as number[], inversePermutation(param.perm)) : data });
    });
    if (layer.getClassName() === 'BatchNormalization') {
      entries.push({ key: `${torchName(layer.name)}.num_batches_tracked`, shape: [], data: BigInt64Array.of(BigInt(options.numBatchesTracked ?? 0)) });
    }
  }
  return entries;
}

/** The training steps a state dict's batch norms have counted (their num_batches_tracked; 0 where it has none). */
export function batchesTrackedIn(state: StateDict): number {
  const key = state.names.find((name) => name.endsWith('.num_batches_tracked'));
  return key === undefined ? 0 : Number(state.get(key)!.data[0]);
}

/** Number of classes of a state dict's head, read from its final Linear's weight ([classes, features]). */
export function numClassesFromStateDict(state: StateDict, headWeightKey: string): number {
  const weight = state.get(headWeightKey);
  if (weight === undefined || weight.shape.length !== 2) {
    throw new UserError(`The state dict has no classifier weight ${headWeightKey} (a [classes, features] matrix), so its number of classes is unknown; is it a state dict of this architecture?`);
  }
  return weight.shape[0];
}

/** Trainable parameters, batch-norm moving statistics excluded — the count torch's `p.requires_grad` sum gives. */
export function countTrainableParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((sum, w) => sum + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

/**
 * The layer producing a torchvision module's output: the layer of that name,
 * or else the last one inside its subtree (layers are in topological order).
 * `architecture` and `examples` make the error say what a valid path looks like.
 */
export function layerForModule(model: tf.LayersModel, torchPath: string, architecture: string, examples: string): tf.layers.Layer {
  const near = () => nearModules(model, torchPath).join(', ');
  if (torchPath.includes('_')) {
    throw new UserError(`${architecture} has no module ${torchPath}: target layers are torchvision module paths, with dots, such as ${examples}; nearest in this model: ${near()}.`);
  }
  const name = tfjsName(torchPath);
  const exact = model.layers.find((layer) => layer.name === name);
  if (exact) return exact;
  const inside = model.layers.filter((layer) => layer.name.startsWith(`${name}_`));
  if (inside.length === 0) throw new UserError(`${architecture} has no module ${torchPath}; target layers are torchvision module paths such as ${examples}; nearest in this model: ${near()}.`);
  return inside[inside.length - 1];
}

/**
 * The model's torch module paths (its layers' and every enclosing module's)
 * closest to `torchPath` by edit distance, in network order among equals:
 * what an error about a mistyped module offers instead.
 */
export function nearModules(model: tf.LayersModel, torchPath: string, count = 5): string[] {
  const modules = new Set<string>();
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const parts = torchName(layer.name).split('.');
    for (let i = 1; i <= parts.length; i++) modules.add(parts.slice(0, i).join('.'));
  }
  return nearestNames(torchPath.replaceAll('_', '.'), modules, count);
}

/** Builds a model and loads weights into it; a failed load frees the model's tensors before the error goes on. */
export function buildAndImport(build: () => tf.LayersModel, load: (model: tf.LayersModel) => void): tf.LayersModel {
  const model = build();
  try {
    load(model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}
