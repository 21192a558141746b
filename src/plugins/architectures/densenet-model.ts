/**
 * DenseNet as torchvision builds it (Huang et al. 2017, torchvision's
 * `densenet.py`), as a functional tfjs layers model in NHWC, with layer names
 * that are torchvision's module paths so that torchvision state dicts load
 * and give the same outputs.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../core/errors.ts';
import type { StateDict } from '../../core/io/pytorch-state-dict.ts';
import { countTrainableParams, importTorchWeights, tfjsName, torchName, buildAndImport } from '../../core/tensor/torch-weights.ts';
import { pytorchBatchNorm } from '../../core/tensor/pytorch-batch-norm.ts';

export { countTrainableParams, tfjsName, torchName };

export interface DenseNetParams {
  growthRate: number;
  blockConfig: number[];
  numInitFeatures: number;
  bnSize: number;
  numClasses: number;
  inputSize: number;
}

export type DenseNetPreset = 'densenet121' | 'densenet161' | 'densenet169' | 'densenet201';

export const DENSENET_PRESETS: Record<DenseNetPreset, Pick<DenseNetParams, 'growthRate' | 'blockConfig' | 'numInitFeatures'>> = {
  densenet121: { growthRate: 32, blockConfig: [6, 12, 24, 16], numInitFeatures: 64 },
  densenet161: { growthRate: 48, blockConfig: [6, 12, 36, 24], numInitFeatures: 96 },
  densenet169: { growthRate: 32, blockConfig: [6, 12, 32, 32], numInitFeatures: 64 },
  densenet201: { growthRate: 32, blockConfig: [6, 12, 48, 32], numInitFeatures: 64 },
};

/** The study's DenseNet is densenet201, which bare `densenet` means. */
export const DENSENET_DEFAULTS: DenseNetParams = { ...DENSENET_PRESETS.densenet201, bnSize: 4, numClasses: 1000, inputSize: 224 };

export function denseNetPreset(depth: 121 | 161 | 169 | 201, params: Partial<Omit<DenseNetParams, 'growthRate' | 'blockConfig' | 'numInitFeatures'>> = {}): DenseNetParams {
  const preset = DENSENET_PRESETS[`densenet${depth}`];
  if (!preset) throw new UserError(`DenseNet depth ${depth} has no preset; use 121, 161, 169 or 201, or give growthRate, blockConfig and numInitFeatures.`);
  return { ...DENSENET_DEFAULTS, ...params, ...preset, blockConfig: [...preset.blockConfig] };
}

/**
 * CAM target: torchvision's `features.norm5`. torchvision's forward applies
 * an in-place `F.relu` to norm5's output, so pytorch-grad-cam's forward hook
 * on norm5 ends up holding the post-ReLU tensor while its backward hook sees
 * the gradient at norm5's (pre-ReLU) output. A Grad-CAM that matches the
 * reference therefore takes activations from DENSENET_CAM_ACTIVATION_LAYER
 * and gradients at DENSENET_CAM_GRADIENT_LAYER.
 */
export const DENSENET_TARGET_LAYER = 'features.norm5';
export const DENSENET_CAM_GRADIENT_LAYER = tfjsName('features.norm5');
/** torchvision applies this ReLU functionally, so `features.norm5.relu` names no torch module and carries no weights. */
export const DENSENET_CAM_ACTIVATION_LAYER = tfjsName('features.norm5.relu');

function batchNorm(x: tf.SymbolicTensor, path: string): tf.SymbolicTensor {
  // PyTorch's eps 1e-5; its momentum 0.1 weighs the new batch, Keras's 0.9 the old average: the same update.
  return pytorchBatchNorm({ axis: -1, epsilon: 1e-5, momentum: 0.9, name: tfjsName(path) }).apply(x) as tf.SymbolicTensor;
}

function relu(x: tf.SymbolicTensor, path: string): tf.SymbolicTensor {
  return tf.layers.reLU({ name: tfjsName(path) }).apply(x) as tf.SymbolicTensor;
}

function conv(x: tf.SymbolicTensor, path: string, filters: number, kernel: number, stride = 1, pad = 0): tf.SymbolicTensor {
  // TF's 'same' pads asymmetrically at stride 2; PyTorch pads both sides equally, so pad explicitly and convolve 'valid'.
  const padded = pad > 0 ? (tf.layers.zeroPadding2d({ padding: pad, name: tfjsName(`${path}.pad`) }).apply(x) as tf.SymbolicTensor) : x;
  return tf.layers
    .conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'valid', useBias: false, name: tfjsName(path) })
    .apply(padded) as tf.SymbolicTensor;
}

function checkParams(p: DenseNetParams): void {
  const positiveInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  const bad: string[] = [];
  if (!positiveInt(p.growthRate)) bad.push(`growthRate ${p.growthRate}`);
  if (!Array.isArray(p.blockConfig) || p.blockConfig.length === 0 || !p.blockConfig.every(positiveInt)) bad.push(`blockConfig ${JSON.stringify(p.blockConfig)}`);
  if (!positiveInt(p.numInitFeatures)) bad.push(`numInitFeatures ${p.numInitFeatures}`);
  if (!positiveInt(p.bnSize)) bad.push(`bnSize ${p.bnSize}`);
  if (!positiveInt(p.numClasses)) bad.push(`numClasses ${p.numClasses}`);
  if (!positiveInt(p.inputSize)) bad.push(`inputSize ${p.inputSize}`);
  if (bad.length) throw new UserError(`invalid DenseNet parameters: ${bad.join(', ')} (each must be a positive integer; blockConfig a non-empty list of them).`);
  // Each transition halves the resolution after the stem's factor 4; below 1 pixel the pools fail.
  const minSize = 4 * 2 ** (p.blockConfig.length - 1);
  if (p.inputSize < minSize) throw new UserError(`DenseNet with ${p.blockConfig.length} blocks needs inputSize ≥ ${minSize}, got ${p.inputSize}.`);
}

export function buildDenseNet(params: Partial<DenseNetParams> = {}): tf.LayersModel {
  const p: DenseNetParams = { ...DENSENET_DEFAULTS, ...params };
  checkParams(p);
  const { growthRate, blockConfig, numInitFeatures, bnSize, numClasses, inputSize } = p;

  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = conv(input, 'features.conv0', numInitFeatures, 7, 2, 3);
  x = batchNorm(x, 'features.norm0');
  x = relu(x, 'features.relu0');
  // Zero padding stands in for PyTorch's -inf padding of the max pool: it
  // follows a ReLU, so every value is ≥ 0 and a padded zero never wins.
  x = tf.layers.zeroPadding2d({ padding: 1, name: tfjsName('features.pool0.pad') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: tfjsName('features.pool0') }).apply(x) as tf.SymbolicTensor;

  let channels = numInitFeatures;
  blockConfig.forEach((layers, b) => {
    const block = `features.denseblock${b + 1}`;
    for (let l = 1; l <= layers; l++) {
      const path = `${block}.denselayer${l}`;
      let y = batchNorm(x, `${path}.norm1`);
      y = relu(y, `${path}.relu1`);
      y = conv(y, `${path}.conv1`, bnSize * growthRate, 1);
      y = batchNorm(y, `${path}.norm2`);
      y = relu(y, `${path}.relu2`);
      y = conv(y, `${path}.conv2`, growthRate, 3, 1, 1);
      // torchvision concatenates [input, new1, new2, …] before each layer; a
      // running concatenation keeps that channel order, which the next
      // layer's weights depend on.
      x = tf.layers.concatenate({ axis: -1, name: tfjsName(`${path}.cat`) }).apply([x, y]) as tf.SymbolicTensor;
      channels += growthRate;
    }
    if (b !== blockConfig.length - 1) {
      const path = `features.transition${b + 1}`;
      channels = Math.floor(channels / 2);
      x = batchNorm(x, `${path}.norm`);
      x = relu(x, `${path}.relu`);
      x = conv(x, `${path}.conv`, channels, 1);
      x = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: tfjsName(`${path}.pool`) }).apply(x) as tf.SymbolicTensor;
    }
  });

  x = batchNorm(x, 'features.norm5');
  x = tf.layers.reLU({ name: DENSENET_CAM_ACTIVATION_LAYER }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: numClasses, name: 'classifier' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'densenet' });
}

/**
 * Reads a torchvision DenseNet's constructor arguments off its state dict,
 * for error messages and for sizing the head; undefined where the file is
 * not shaped like one.
 */
export function denseNetParamsFromState(file: StateDict): Partial<DenseNetParams> & { preset?: DenseNetPreset } {
  const state = withModernDenseNetKeys(file);
  const found: Partial<DenseNetParams> & { preset?: DenseNetPreset } = {};
  const conv0 = state.get('features.conv0.weight');
  if (conv0?.shape.length === 4) found.numInitFeatures = conv0.shape[0];
  const classifier = state.get('classifier.weight');
  if (classifier?.shape.length === 2) found.numClasses = classifier.shape[0];
  const firstConv1 = state.get('features.denseblock1.denselayer1.conv1.weight');
  const firstConv2 = state.get('features.denseblock1.denselayer1.conv2.weight');
  if (firstConv2?.shape.length === 4) found.growthRate = firstConv2.shape[0];
  if (firstConv1?.shape.length === 4 && found.growthRate) found.bnSize = firstConv1.shape[0] / found.growthRate;
  const blocks: number[] = [];
  for (const name of state.names) {
    const m = /^features\.denseblock(\d+)\.denselayer(\d+)\./.exec(name);
    if (m) blocks[Number(m[1]) - 1] = Math.max(blocks[Number(m[1]) - 1] ?? 0, Number(m[2]));
  }
  if (blocks.length) found.blockConfig = Array.from(blocks, (n) => n ?? 0);
  for (const [preset, p] of Object.entries(DENSENET_PRESETS) as [DenseNetPreset, DenseNetParams][]) {
    if (
      p.growthRate === found.growthRate &&
      p.numInitFeatures === found.numInitFeatures &&
      JSON.stringify(p.blockConfig) === JSON.stringify(found.blockConfig) &&
      (found.bnSize ?? 4) === 4
    ) found.preset = preset;
  }
  return found;
}

function configHint(state: StateDict): string {
  const f = denseNetParamsFromState(state);
  if (f.growthRate === undefined || f.blockConfig === undefined || f.numInitFeatures === undefined) {
    return 'the file does not look like a torchvision DenseNet state dict (no features.conv0 / features.denseblock1.denselayer1 weights).';
  }
  const args = `growthRate=${f.growthRate}, blockConfig=[${f.blockConfig.join(',')}], numInitFeatures=${f.numInitFeatures}, bnSize=${f.bnSize}, numClasses=${f.numClasses}`;
  return f.preset
    ? `the file holds a ${f.preset} (${args}); use that preset.`
    : `the file holds a DenseNet with ${args}; build the model with those parameters.`;
}

/**
 * Copies a torchvision DenseNet state dict into a model from `buildDenseNet`,
 * strictly: a missing, mis-shaped or left-over parameter is a UserError that
 * says which DenseNet the file holds, and the model is left untouched.
 */
export function importTorchDenseNet(model: tf.LayersModel, state: StateDict): void {
  const modern = withModernDenseNetKeys(state);
  importTorchWeights(model, modern, { what: `this DenseNet (${describeModel(model)})`, hint: configHint(modern) });
}

const LEGACY_KEY = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$/;

/**
 * torchvision's own ImageNet DenseNet files predate its module names: they
 * say `denselayer1.norm.1.weight` where the model has `denselayer1.norm1.weight`
 * (torchvision renames them on load the same way; num_batches_tracked, which those files lack, is renamed too). Other files pass
 * through unchanged.
 */
export function withModernDenseNetKeys(state: StateDict): StateDict {
  if (!state.names.some((name) => LEGACY_KEY.test(name))) return state;
  const renamed = new Map<string, StateDict extends Map<string, infer T> ? T : never>();
  for (const name of state.names) {
    const m = LEGACY_KEY.exec(name);
    renamed.set(m ? `${m[1]}${m[2]}` : name, state.get(name)!);
  }
  return Object.assign(renamed, { names: Object.freeze([...renamed.keys()]) });
}

function describeModel(model: tf.LayersModel): string {
  const found = (name: string): number[] | undefined => {
    try {
      return model.getLayer(tfjsName(name)).weights[0]?.shape as number[] | undefined;
    } catch {
      return undefined;
    }
  };
  const blocks: number[] = [];
  for (const layer of model.layers) {
    const m = /^features_denseblock(\d+)_denselayer(\d+)_conv2$/.exec(layer.name);
    if (m) blocks[Number(m[1]) - 1] = Math.max(blocks[Number(m[1]) - 1] ?? 0, Number(m[2]));
  }
  const growth = found('features.denseblock1.denselayer1.conv2')?.[3];
  const init = found('features.conv0')?.[3];
  const classes = found('classifier')?.[1];
  return `growthRate ${growth}, blockConfig [${blocks.join(',')}], numInitFeatures ${init}, numClasses ${classes}`;
}

/** Builds the DenseNet a state dict describes (head size from the file unless numClasses is given) and loads it. */
export function denseNetFromState(legacyOrModern: StateDict, params: Partial<DenseNetParams> = {}): tf.LayersModel {
  const state = withModernDenseNetKeys(legacyOrModern);
  const numClasses = params.numClasses ?? denseNetParamsFromState(state).numClasses;
  return buildAndImport(() => buildDenseNet({ ...params, ...(numClasses !== undefined ? { numClasses } : {}) }), (model) => importTorchDenseNet(model, state));
}
