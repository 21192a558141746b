/**
 * MobileNetV2 as torchvision builds it (models/mobilenetv2.py), in tfjs
 * layers with NHWC tensors, so that torchvision state dicts — ImageNet
 * weights or a model fine-tuned in PyTorch — load and give the same logits.
 *
 * Every layer is named after the torch module it mirrors (`features.1.conv.0.0`
 * → `features_1_conv_0_0`, see torch-weights.ts); layers torch has no module
 * for (padding, residual adds, pooling) carry a suffix after their module's
 * name, so a module's output is the output of the last layer under its name.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../core/errors.ts';
import type { StateDict } from '../../core/io/pytorch-state-dict.ts';
import { importTorchWeights, numClassesFromStateDict, tfjsName, torchName, layerForModule as sharedLayerForModule, buildAndImport } from '../../core/tensor/torch-weights.ts';
import { pytorchBatchNorm } from '../../core/tensor/pytorch-batch-norm.ts';

export { tfjsName, torchName };

export interface MobileNetV2Options {
  widthMult?: number;
  numClasses?: number;
  inputSize?: number;
}

/** pytorch-grad-cam's recommendation: the last feature block (its ReLU6 output). */
export const MOBILENET_V2_TARGET_LAYER = 'features.18';
export const MOBILENET_V2_HEAD = 'classifier.1';

/** (expansion t, channels c, repeats n, first stride s) per stage, torchvision's table. */
const INVERTED_RESIDUAL_SETTING: ReadonlyArray<readonly [number, number, number, number]> = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** torchvision's `_make_divisible`: nearest multiple of `divisor`, never below it nor more than 10 % under `v`. */
export function makeDivisible(v: number, divisor = 8): number {
  let rounded = Math.max(divisor, Math.floor(Math.floor(v + divisor / 2) / divisor) * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

/** Channel widths a given widthMult produces, in the order the layers meet them. */
export function mobileNetV2Widths(widthMult: number): { stem: number; stages: number[]; last: number } {
  return {
    stem: makeDivisible(32 * widthMult),
    stages: INVERTED_RESIDUAL_SETTING.map(([, c]) => makeDivisible(c * widthMult)),
    last: makeDivisible(1280 * Math.max(1, widthMult)),
  };
}

// PyTorch's batch norm: eps 1e-5 and running = 0.9·running + 0.1·batch (TF counts momentum the other way).
const bn = (path: string): tf.layers.Layer =>
  pytorchBatchNorm({ axis: -1, epsilon: 1e-5, momentum: 0.9, name: tfjsName(path) });

const relu6 = (path: string): tf.layers.Layer => tf.layers.activation({ activation: 'relu6', name: tfjsName(path) });

// torchvision initialises convolutions with Kaiming-normal over fan-out.
const kaimingFanOut = () =>
  tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal' });

type Sym = tf.SymbolicTensor;

/**
 * Conv + BN + ReLU6 (torchvision's Conv2dNormActivation) at module `path`.
 * 3×3 kernels get an explicit symmetric 1-pixel pad: TF's 'same' pads only
 * the bottom/right at stride 2, which would shift every feature map.
 */
function convBnRelu(x: Sym, path: string, filters: number, kernel: 1 | 3, stride: number, depthwise: boolean, activate = true): Sym {
  let y = x;
  if (kernel === 3) y = tf.layers.zeroPadding2d({ padding: 1, name: `${tfjsName(path)}_0_pad` }).apply(y) as Sym;
  const conv = depthwise
    ? tf.layers.depthwiseConv2d({
        kernelSize: kernel, strides: stride, padding: 'valid', useBias: false, depthMultiplier: 1,
        depthwiseInitializer: kaimingFanOut(), name: tfjsName(`${path}.0`),
      })
    : tf.layers.conv2d({
        filters, kernelSize: kernel, strides: stride, padding: 'valid', useBias: false,
        kernelInitializer: kaimingFanOut(), name: tfjsName(`${path}.0`),
      });
  y = conv.apply(y) as Sym;
  y = bn(`${path}.1`).apply(y) as Sym;
  return activate ? (relu6(`${path}.2`).apply(y) as Sym) : y;
}

/** torchvision's InvertedResidual at `features.<index>`: optional 1×1 expansion, 3×3 depthwise, linear 1×1 projection. */
function invertedResidual(x: Sym, index: number, inChannels: number, outChannels: number, stride: number, expand: number): Sym {
  const block = `features.${index}.conv`;
  const hidden = Math.round(inChannels * expand);
  let y = x;
  let part = 0;
  if (expand !== 1) y = convBnRelu(y, `${block}.${part++}`, hidden, 1, 1, false);
  y = convBnRelu(y, `${block}.${part++}`, hidden, 3, stride, true);
  y = tf.layers.conv2d({
    filters: outChannels, kernelSize: 1, padding: 'valid', useBias: false,
    kernelInitializer: kaimingFanOut(), name: tfjsName(`${block}.${part++}`),
  }).apply(y) as Sym;
  y = bn(`${block}.${part}`).apply(y) as Sym;
  if (stride === 1 && inChannels === outChannels) {
    y = tf.layers.add({ name: `${tfjsName(`features.${index}`)}_add` }).apply([x, y]) as Sym;
  }
  return y;
}

function checkOptions(widthMult: number, numClasses: number, inputSize: number): void {
  if (!(widthMult > 0) || !Number.isFinite(widthMult)) throw new UserError(`MobileNetV2 widthMult must be a positive number, not ${widthMult}.`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new UserError(`MobileNetV2 numClasses must be a positive integer, not ${numClasses}.`);
  // Five stride-2 stages: below 32 pixels the last feature map would vanish.
  if (!Number.isInteger(inputSize) || inputSize < 32) throw new UserError(`MobileNetV2 inputSize must be an integer of at least 32 pixels, not ${inputSize}.`);
}

/** torchvision's `mobilenet_v2(width_mult=…, num_classes=…)`, taking NHWC inputs of inputSize² × 3 and giving logits. */
export function buildMobileNetV2(options: MobileNetV2Options = {}): tf.LayersModel {
  const { widthMult = 1, numClasses = 1000, inputSize = 224 } = options;
  checkOptions(widthMult, numClasses, inputSize);
  const widths = mobileNetV2Widths(widthMult);
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = convBnRelu(input, 'features.0', widths.stem, 3, 2, false);
  let channels = widths.stem;
  let index = 1;
  INVERTED_RESIDUAL_SETTING.forEach(([t, , n, s], stage) => {
    for (let i = 0; i < n; i++) {
      x = invertedResidual(x, index++, channels, widths.stages[stage], i === 0 ? s : 1, t);
      channels = widths.stages[stage];
    }
  });
  x = convBnRelu(x, `features.${index}`, widths.last, 1, 1, false);
  // torchvision pools functionally (no module), hence a name outside its tree.
  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as Sym;
  x = tf.layers.dropout({ rate: 0.2, name: tfjsName('classifier.0') }).apply(x) as Sym;
  const logits = tf.layers.dense({
    units: numClasses, name: tfjsName(MOBILENET_V2_HEAD),
    kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.01 }), biasInitializer: 'zeros',
  }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: logits, name: 'mobilenet_v2' });
}

/**
 * The tfjs layer whose output is the output of torch module `torchPath`
 * (e.g. `features.18` → its ReLU6 `features_18_2`; a residual block → its add).
 */
export function layerForModule(model: tf.LayersModel, torchPath: string): tf.layers.Layer {
  return sharedLayerForModule(model, torchPath, 'MobileNetV2', `${MOBILENET_V2_TARGET_LAYER} or features.17.conv.2`);
}

/** tfjs names of the convolutions (regular and depthwise), in order — FullGrad's bias sources. */
export function mobileNetV2ConvLayers(model: tf.LayersModel): string[] {
  return model.layers.filter((layer) => ['Conv2D', 'DepthwiseConv2D'].includes(layer.getClassName())).map((layer) => layer.name);
}

const COMMON_WIDTHS = [0.35, 0.5, 0.75, 1, 1.3, 1.4];

/**
 * The configuration a torchvision MobileNetV2 state dict was saved from:
 * classes from the head, widthMult from the stem, stage and last widths
 * (the common multipliers are tried; undefined when none fits).
 */
export function inferMobileNetV2Config(state: StateDict): { widthMult?: number; numClasses: number } {
  const numClasses = numClassesFromStateDict(state, `${MOBILENET_V2_HEAD}.weight`);
  const found = (key: string): number | undefined => state.get(key)?.shape[0];
  const stem = found('features.0.0.weight');
  const lastStage = found('features.17.conv.2.weight');
  const last = found('features.18.0.weight');
  const widthMult = COMMON_WIDTHS.find((w) => {
    const widths = mobileNetV2Widths(w);
    return widths.stem === stem && widths.stages[6] === lastStage && widths.last === last;
  });
  return { widthMult, numClasses };
}

/**
 * Loads a torchvision MobileNetV2 state dict into a model from
 * buildMobileNetV2. Mismatches name the parameter, both shapes and the
 * widthMult / numClasses the file was saved with.
 */
export function importTorchMobileNetV2(model: tf.LayersModel, state: StateDict, built: { widthMult?: number; numClasses?: number } = {}): void {
  let hint: string;
  try {
    const inferred = inferMobileNetV2Config(state);
    const width = inferred.widthMult === undefined
      ? 'a widthMult other than the common ones (0.35, 0.5, 0.75, 1, 1.3, 1.4)'
      : `widthMult=${inferred.widthMult}`;
    hint = `the file looks like a MobileNetV2 with ${width} and numClasses=${inferred.numClasses}; build the model with those.`;
  } catch {
    hint = 'the file does not look like a torchvision MobileNetV2 state dict (no classifier.1.weight).';
  }
  const head = model.getLayer(tfjsName(MOBILENET_V2_HEAD));
  const classes = (head.outputShape as number[])[1];
  const widthText = built.widthMult === undefined ? '' : `widthMult ${built.widthMult}, `;
  importTorchWeights(model, state, { what: `this MobileNetV2 (${widthText}numClasses ${classes})`, hint });
}

/** A MobileNetV2 sized from the state dict's head (unless numClasses is given) with its weights loaded. */
export function mobileNetV2FromStateDict(state: StateDict, options: MobileNetV2Options = {}): tf.LayersModel {
  const numClasses = options.numClasses ?? numClassesFromStateDict(state, `${MOBILENET_V2_HEAD}.weight`);
  return buildAndImport(() => buildMobileNetV2({ ...options, numClasses }), (model) => importTorchMobileNetV2(model, state, { widthMult: options.widthMult ?? 1, numClasses }));
}
