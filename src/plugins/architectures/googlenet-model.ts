/**
 * GoogLeNet (Inception v1) as torchvision builds it (models/googlenet.py),
 * without the auxiliary heads, as a functional tfjs layers model in NHWC whose
 * layer names are torchvision's module paths, so that torchvision state dicts
 * load and give the same logits.
 *
 * Layers torch has no module for (padding, BasicConv2d's functional ReLU, the
 * branch concatenation) carry a suffix after their module's name; each
 * Inception block's concatenation is named after the block itself
 * (`inception5b`), so the block's path names its output.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../core/errors.ts';
import { IMAGENET_NORMALISATION, type Preprocessing } from '../../core/tensor/preprocess.ts';
import type { StateDict } from '../../core/io/pytorch-state-dict.ts';
import { countTrainableParams, importTorchWeights, numClassesFromStateDict, tfjsName, torchName, layerForModule as sharedLayerForModule, buildAndImport } from '../../core/tensor/torch-weights.ts';
import { pytorchBatchNorm } from '../../core/tensor/pytorch-batch-norm.ts';

export { countTrainableParams, tfjsName, torchName };

export interface GoogLeNetOptions {
  numClasses?: number;
  inputSize?: number;
  /**
   * torchvision's `transform_input`: the ImageNet weights were trained on
   * inputs normalised to [-1, 1] per channel, so their forward re-maps
   * ImageNet mean/std-normalised inputs to that range. True for those weights
   * (torchvision sets it when loading them), false for a model built fresh.
   */
  transformInput?: boolean;
}

/** pytorch-grad-cam's recommendation for GoogLeNet. */
export const GOOGLENET_TARGET_LAYER = 'inception5b';
export const GOOGLENET_HEAD = 'fc';
export const GOOGLENET_PREPROCESSING: Preprocessing = { size: [224, 224], normalisation: IMAGENET_NORMALISATION };

/** (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, poolProj) per block, torchvision's table; the "5x5" branch has a 3×3 kernel there. */
const INCEPTION: ReadonlyArray<readonly [string, readonly [number, number, number, number, number, number]]> = [
  ['inception3a', [64, 96, 128, 16, 32, 32]],
  ['inception3b', [128, 128, 192, 32, 96, 64]],
  ['inception4a', [192, 96, 208, 16, 48, 64]],
  ['inception4b', [160, 112, 224, 24, 64, 64]],
  ['inception4c', [128, 128, 256, 24, 64, 64]],
  ['inception4d', [112, 144, 288, 32, 64, 64]],
  ['inception4e', [256, 160, 320, 32, 128, 128]],
  ['inception5a', [256, 160, 320, 32, 128, 128]],
  ['inception5b', [384, 192, 384, 48, 128, 128]],
];

/** Mean and std of torchvision's `_transform_input`, channel by channel: x' = x·std/0.5 + (mean − 0.5)/0.5. */
const TRANSFORM_STD = [0.229, 0.224, 0.225];
const TRANSFORM_MEAN = [0.485, 0.456, 0.406];

/**
 * torchvision's input re-normalisation as a weightless layer: a layer with
 * weights would be taken for a torch module by the importer, and the
 * constants are fixed facts of the ImageNet weights, not parameters.
 */
export class GoogLeNetInputTransform extends tf.layers.Layer {
  static className = 'GoogLeNetInputTransform';

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const scale = tf.tensor1d(TRANSFORM_STD.map((s) => s / 0.5));
      const shift = tf.tensor1d(TRANSFORM_MEAN.map((m) => (m - 0.5) / 0.5));
      return x.mul(scale).add(shift);
    });
  }
}
tf.serialization.registerClass(GoogLeNetInputTransform);

type Sym = tf.SymbolicTensor;

// torchvision initialises GoogLeNet's convolutions and fc with N(0, 0.01) truncated at ±2 — ±200 σ, so plain normal.
const smallNormal = () => tf.initializers.randomNormal({ mean: 0, stddev: 0.01 });

/** torchvision's BasicConv2d at `path`: conv (no bias) `path.conv`, BN `path.bn` with eps 1e-3, then a functional ReLU. */
function basicConv(x: Sym, path: string, filters: number, kernel: number, stride = 1, pad = 0): Sym {
  let y = x;
  // PyTorch pads symmetrically; TF's 'same' does not at stride 2.
  if (pad > 0) y = tf.layers.zeroPadding2d({ padding: pad, name: tfjsName(`${path}.pad`) }).apply(y) as Sym;
  y = tf.layers
    .conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'valid', useBias: false, kernelInitializer: smallNormal(), name: tfjsName(`${path}.conv`) })
    .apply(y) as Sym;
  // eps 0.001 is BasicConv2d's own; momentum 0.9 in Keras's sense is PyTorch's 0.1.
  y = pytorchBatchNorm({ axis: -1, epsilon: 1e-3, momentum: 0.9, name: tfjsName(`${path}.bn`) }).apply(y) as Sym;
  return tf.layers.reLU({ name: tfjsName(`${path}.relu`) }).apply(y) as Sym;
}

/**
 * Output size of PyTorch's `MaxPool2d(kernel, stride, pad, ceil_mode=True)`:
 * ceil((in + 2·pad − kernel) / stride) + 1, minus one when that last window
 * would start inside the right-hand padding (start (out − 1)·stride ≥ in + pad).
 */
export function ceilPoolSize(size: number, kernel: number, stride: number, pad = 0): number {
  let out = Math.ceil((size + 2 * pad - kernel) / stride) + 1;
  if ((out - 1) * stride >= size + pad) out -= 1;
  return out;
}

/**
 * A ceil-mode max pool on a size×size map: `pad` on every side as PyTorch
 * does, plus on the bottom/right however many more cells the last window
 * overhangs ((out − 1)·stride + kernel − (size + 2·pad)), then a 'valid' pool.
 * PyTorch pads with −∞; zeros are equivalent here because every pool in
 * GoogLeNet follows a ReLU (values ≥ 0) and every window keeps at least one
 * real cell, so a padded zero never exceeds the window's true maximum.
 */
function ceilMaxPool(x: Sym, path: string, size: number, kernel: number, stride: number, pad = 0): [Sym, number] {
  const out = ceilPoolSize(size, kernel, stride, pad);
  const extra = Math.max(0, (out - 1) * stride + kernel - (size + 2 * pad));
  let y = x;
  if (pad > 0 || extra > 0) {
    y = tf.layers.zeroPadding2d({ padding: [[pad, pad + extra], [pad, pad + extra]], name: tfjsName(`${path}.pad`) }).apply(y) as Sym;
  }
  y = tf.layers.maxPooling2d({ poolSize: kernel, strides: stride, padding: 'valid', name: tfjsName(path) }).apply(y) as Sym;
  return [y, out];
}

/** torchvision's Inception block at `path`; branches concatenate in order 1–4 into a layer named `path`. */
function inception(x: Sym, path: string, size: number, widths: readonly [number, number, number, number, number, number]): Sym {
  const [ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, poolProj] = widths;
  const b1 = basicConv(x, `${path}.branch1`, ch1x1, 1);
  const b2 = basicConv(basicConv(x, `${path}.branch2.0`, ch3x3red, 1), `${path}.branch2.1`, ch3x3, 3, 1, 1);
  const b3 = basicConv(basicConv(x, `${path}.branch3.0`, ch5x5red, 1), `${path}.branch3.1`, ch5x5, 3, 1, 1);
  const [pooled] = ceilMaxPool(x, `${path}.branch4.0`, size, 3, 1, 1);
  const b4 = basicConv(pooled, `${path}.branch4.1`, poolProj, 1);
  return tf.layers.concatenate({ axis: -1, name: tfjsName(path) }).apply([b1, b2, b3, b4]) as Sym;
}

function checkOptions(numClasses: number, inputSize: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new UserError(`GoogLeNet numClasses must be a positive integer, not ${numClasses}.`);
  // Stem conv and four ceil-mode pools halve the map five times; below 32 pixels the last pool has nothing left to halve.
  if (!Number.isInteger(inputSize) || inputSize < 32) throw new UserError(`GoogLeNet inputSize must be an integer of at least 32 pixels, not ${inputSize}.`);
}

/** torchvision's `GoogLeNet(num_classes, aux_logits=False, transform_input)`, taking NHWC inputs of inputSize² × 3 and giving logits. */
export function buildGoogLeNet(options: GoogLeNetOptions = {}): tf.LayersModel {
  const { numClasses = 1000, inputSize = 224, transformInput = false } = options;
  checkOptions(numClasses, inputSize);
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x: Sym = input;
  if (transformInput) x = new GoogLeNetInputTransform({ name: 'transforminput' }).apply(x) as Sym;
  let size = inputSize;
  x = basicConv(x, 'conv1', 64, 7, 2, 3);
  size = Math.floor((size + 6 - 7) / 2) + 1;
  [x, size] = ceilMaxPool(x, 'maxpool1', size, 3, 2);
  x = basicConv(x, 'conv2', 64, 1);
  x = basicConv(x, 'conv3', 192, 3, 1, 1);
  [x, size] = ceilMaxPool(x, 'maxpool2', size, 3, 2);
  for (const [path, widths] of INCEPTION) {
    x = inception(x, path, size, widths);
    if (path === 'inception3b') [x, size] = ceilMaxPool(x, 'maxpool3', size, 3, 2);
    if (path === 'inception4e') [x, size] = ceilMaxPool(x, 'maxpool4', size, 2, 2);
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as Sym;
  x = tf.layers.dropout({ rate: 0.2, name: 'dropout' }).apply(x) as Sym;
  const logits = tf.layers.dense({
    units: numClasses, name: GOOGLENET_HEAD, kernelInitializer: smallNormal(), biasInitializer: 'zeros',
  }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: logits, name: 'googlenet' });
}

/** The tfjs layer whose output is the output of torch module `torchPath` (e.g. `inception5b` → its concatenation). */
export function layerForModule(model: tf.LayersModel, torchPath: string): tf.layers.Layer {
  return sharedLayerForModule(model, torchPath, 'GoogLeNet', `${GOOGLENET_TARGET_LAYER}, inception4e or inception5b.branch2.1`);
}

/** tfjs names of the convolutions, in order — FullGrad's bias sources. */
export function googLeNetConvLayers(model: tf.LayersModel): string[] {
  return model.layers.filter((layer) => layer.getClassName() === 'Conv2D').map((layer) => layer.name);
}

/** torchvision's ImageNet files carry the auxiliary classifiers' weights, which a model without them skips. */
export const isAuxWeight = (key: string): boolean => key.startsWith('aux1.') || key.startsWith('aux2.');

/**
 * Copies a torchvision GoogLeNet state dict into a model from
 * buildGoogLeNet, strictly apart from the aux heads' weights: a missing,
 * mis-shaped or left-over parameter is a UserError naming the file's
 * numClasses, and the model is left untouched.
 */
export function importTorchGoogLeNet(model: tf.LayersModel, state: StateDict): void {
  let hint: string;
  if (state.get('conv1.conv.weight') === undefined || state.get('inception5b.branch1.conv.weight') === undefined) {
    hint = 'the file does not look like a torchvision GoogLeNet state dict (no conv1.conv / inception5b.branch1.conv weights).';
  } else {
    const fc = state.get(`${GOOGLENET_HEAD}.weight`);
    hint = fc?.shape.length === 2
      ? `the file holds a GoogLeNet with numClasses=${fc.shape[0]}; build the model with that.`
      : 'the file holds a GoogLeNet without a usable fc.weight.';
  }
  const classes = (model.getLayer(GOOGLENET_HEAD).outputShape as number[])[1];
  const transform = model.layers.some((layer) => layer instanceof GoogLeNetInputTransform);
  importTorchWeights(model, state, { what: `this GoogLeNet (numClasses ${classes}, transformInput ${transform})`, hint, ignore: isAuxWeight });
}

/**
 * A GoogLeNet sized from the state dict's head (unless numClasses is given)
 * with its weights loaded. A state dict does not record transform_input, so
 * it defaults to false here: pass true for torchvision's ImageNet weights.
 */
export function googLeNetFromStateDict(state: StateDict, options: GoogLeNetOptions = {}): tf.LayersModel {
  const numClasses = options.numClasses ?? numClassesFromStateDict(state, `${GOOGLENET_HEAD}.weight`);
  return buildAndImport(() => buildGoogLeNet({ ...options, numClasses }), (model) => importTorchGoogLeNet(model, state));
}
