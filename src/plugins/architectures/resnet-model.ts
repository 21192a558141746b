/**
 * ResNet as torchvision builds it (models/resnet.py, the "v1.5" variant whose
 * Bottleneck strides in its 3×3 convolution), as a functional tfjs layers
 * model in NHWC whose layer names are torchvision's module paths, so that
 * torchvision state dicts — ImageNet weights or a model fine-tuned in
 * PyTorch — load and give the same logits.
 *
 * Layers torch has no module for (padding, the residual add, the per-block
 * ReLUs torchvision applies through one shared module) carry a suffix after
 * their block's name; each block's final ReLU is named after the block itself
 * (`layer4.2`), so a block's path names its output and `layerForModule`
 * resolves a stage (`layer4`) to its last block.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../core/errors.ts';
import { IMAGENET_NORMALISATION, type Preprocessing } from '../../core/tensor/preprocess.ts';
import type { StateDict } from '../../core/io/pytorch-state-dict.ts';
import { countTrainableParams, importTorchWeights, numClassesFromStateDict, tfjsName, torchName, layerForModule as sharedLayerForModule, buildAndImport } from '../../core/tensor/torch-weights.ts';
import { pytorchBatchNorm } from '../../core/tensor/pytorch-batch-norm.ts';

export { countTrainableParams, tfjsName, torchName };

export type ResNetBlock = 'basic' | 'bottleneck';

export interface ResNetParams {
  block: ResNetBlock;
  layers: number[];
  widthPerGroup: number;
  groups: number;
  numClasses: number;
  inputSize: number;
}

export type ResNetDepth = 18 | 34 | 50 | 101 | 152;

export const RESNET_PRESETS: Record<ResNetDepth, Pick<ResNetParams, 'block' | 'layers'>> = {
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
};

/** The study's ResNet is resnet101, which bare `resnet` means. */
export const RESNET_DEFAULTS: ResNetParams = { ...RESNET_PRESETS[101], layers: [...RESNET_PRESETS[101].layers], widthPerGroup: 64, groups: 1, numClasses: 1000, inputSize: 224 };

/** pytorch-grad-cam's recommendation: the last block of layer4 (`layer4` resolves to it). */
export const RESNET_TARGET_LAYER = 'layer4';
export const RESNET_HEAD = 'fc';
export const RESNET_PREPROCESSING: Preprocessing = { size: [224, 224], normalisation: IMAGENET_NORMALISATION };

const EXPANSION: Record<ResNetBlock, number> = { basic: 1, bottleneck: 4 };

export function resNetPreset(depth: ResNetDepth, params: Partial<Omit<ResNetParams, 'block' | 'layers'>> = {}): ResNetParams {
  const preset = RESNET_PRESETS[depth];
  if (!preset) throw new UserError(`ResNet depth ${depth} has no preset; use 18, 34, 50, 101 or 152, or give block and layers.`);
  return { ...RESNET_DEFAULTS, ...params, block: preset.block, layers: [...preset.layers] };
}

type Sym = tf.SymbolicTensor;

// torchvision initialises convolutions with Kaiming-normal over fan-out.
const kaimingFanOut = () => tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal' });

function conv(x: Sym, path: string, filters: number, kernel: number, stride = 1, pad = 0): Sym {
  // TF's 'same' pads only bottom/right at stride 2; PyTorch pads both sides equally, so pad explicitly and convolve 'valid'.
  const padded = pad > 0 ? (tf.layers.zeroPadding2d({ padding: pad, name: tfjsName(`${path}.pad`) }).apply(x) as Sym) : x;
  return tf.layers
    .conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'valid', useBias: false, kernelInitializer: kaimingFanOut(), name: tfjsName(path) })
    .apply(padded) as Sym;
}

function batchNorm(x: Sym, path: string): Sym {
  // PyTorch's eps 1e-5; its momentum 0.1 weighs the new batch, Keras's 0.9 the old average: the same update.
  return pytorchBatchNorm({ axis: -1, epsilon: 1e-5, momentum: 0.9, name: tfjsName(path) }).apply(x) as Sym;
}

function relu(x: Sym, name: string): Sym {
  return tf.layers.reLU({ name }).apply(x) as Sym;
}

/** One BasicBlock or Bottleneck at `path` (e.g. `layer2.0`); its output layer is named `path`. */
function block(x: Sym, path: string, kind: ResNetBlock, inplanes: number, planes: number, stride: number, width: number): Sym {
  const expansion = EXPANSION[kind];
  const name = tfjsName(path);
  let y: Sym;
  if (kind === 'basic') {
    y = conv(x, `${path}.conv1`, planes, 3, stride, 1);
    y = relu(batchNorm(y, `${path}.bn1`), `${name}_relu1`);
    y = conv(y, `${path}.conv2`, planes, 3, 1, 1);
    y = batchNorm(y, `${path}.bn2`);
  } else {
    y = conv(x, `${path}.conv1`, width, 1);
    y = relu(batchNorm(y, `${path}.bn1`), `${name}_relu1`);
    y = conv(y, `${path}.conv2`, width, 3, stride, 1);
    y = relu(batchNorm(y, `${path}.bn2`), `${name}_relu2`);
    y = conv(y, `${path}.conv3`, planes * expansion, 1);
    y = batchNorm(y, `${path}.bn3`);
  }
  let identity = x;
  if (stride !== 1 || inplanes !== planes * expansion) {
    identity = conv(x, `${path}.downsample.0`, planes * expansion, 1, stride);
    identity = batchNorm(identity, `${path}.downsample.1`);
  }
  const sum = tf.layers.add({ name: `${name}_add` }).apply([y, identity]) as Sym;
  return relu(sum, name);
}

function checkParams(p: ResNetParams): void {
  const positiveInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  const bad: string[] = [];
  if (p.block !== 'basic' && p.block !== 'bottleneck') bad.push(`block ${JSON.stringify(p.block)} (use 'basic' or 'bottleneck')`);
  if (!Array.isArray(p.layers) || p.layers.length !== 4 || !p.layers.every(positiveInt)) bad.push(`layers ${JSON.stringify(p.layers)} (four positive integers, e.g. [3,4,23,3])`);
  if (!positiveInt(p.widthPerGroup)) bad.push(`widthPerGroup ${p.widthPerGroup} (a positive integer)`);
  if (!positiveInt(p.groups)) bad.push(`groups ${p.groups} (a positive integer)`);
  if (!positiveInt(p.numClasses)) bad.push(`numClasses ${p.numClasses} (a positive integer)`);
  if (!positiveInt(p.inputSize)) bad.push(`inputSize ${p.inputSize} (a positive integer)`);
  if (bad.length) throw new UserError(`invalid ResNet parameters: ${bad.join(', ')}.`);
  // torchvision's BasicBlock refuses other widths too.
  if (p.block === 'basic' && (p.groups !== 1 || p.widthPerGroup !== 64)) {
    throw new UserError(`ResNet's basic block supports only groups=1 and widthPerGroup=64 (as torchvision's BasicBlock), got groups=${p.groups}, widthPerGroup=${p.widthPerGroup}.`);
  }
  // tfjs convolutions have no groups; grouped (ResNeXt) bottlenecks are out of scope.
  if (p.groups !== 1) throw new UserError(`ResNet groups=${p.groups} (ResNeXt) is not supported; only groups=1.`);
  // Five stride-2 steps (stem conv, max pool, layers 2–4): below 32 pixels layer4 would have no pixels.
  if (p.inputSize < 32) throw new UserError(`ResNet needs inputSize ≥ 32, got ${p.inputSize}.`);
}

/** torchvision's `ResNet(block, layers, num_classes, groups, width_per_group)`, taking NHWC inputs of inputSize² × 3 and giving logits. */
export function buildResNet(params: Partial<ResNetParams> = {}): tf.LayersModel {
  const p: ResNetParams = { ...RESNET_DEFAULTS, ...params };
  checkParams(p);
  const { block: kind, layers, widthPerGroup, groups, numClasses, inputSize } = p;
  const expansion = EXPANSION[kind];

  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = conv(input, 'conv1', 64, 7, 2, 3);
  x = batchNorm(x, 'bn1');
  x = relu(x, 'relu');
  // Zero padding stands in for PyTorch's -inf padding of the max pool: it
  // follows a ReLU, so every value is ≥ 0 and a padded zero never wins.
  x = tf.layers.zeroPadding2d({ padding: 1, name: tfjsName('maxpool.pad') }).apply(x) as Sym;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'maxpool' }).apply(x) as Sym;

  let inplanes = 64;
  layers.forEach((count, stage) => {
    const planes = 64 * 2 ** stage;
    const width = Math.floor(planes * (widthPerGroup / 64)) * groups;
    for (let i = 0; i < count; i++) {
      x = block(x, `layer${stage + 1}.${i}`, kind, inplanes, planes, i === 0 && stage > 0 ? 2 : 1, width);
      inplanes = planes * expansion;
    }
  });

  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as Sym;
  const logits = tf.layers.dense({ units: numClasses, name: RESNET_HEAD }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: logits, name: 'resnet' });
}

/**
 * The tfjs layer whose output is the output of torch module `torchPath`
 * (`layer4` or `layer4.2` → the last block's final ReLU `layer4_2`).
 */
export function layerForModule(model: tf.LayersModel, torchPath: string): tf.layers.Layer {
  return sharedLayerForModule(model, torchPath, 'ResNet', `${RESNET_TARGET_LAYER}, layer4.0 or layer3.1.bn2`);
}

/** tfjs names of the convolutions (downsample ones included), in order — FullGrad's bias sources. */
export function resNetConvLayers(model: tf.LayersModel): string[] {
  return model.layers.filter((layer) => layer.getClassName() === 'Conv2D').map((layer) => layer.name);
}

/**
 * Reads a torchvision ResNet's constructor arguments off its state dict, for
 * error messages and for sizing the head; fields stay undefined where the
 * file is not shaped like one.
 */
export function resNetParamsFromState(state: StateDict): Partial<ResNetParams> & { preset?: `resnet${ResNetDepth}` } {
  const found: Partial<ResNetParams> & { preset?: `resnet${ResNetDepth}` } = {};
  const fc = state.get('fc.weight');
  if (fc?.shape.length === 2) found.numClasses = fc.shape[0];
  if (state.get('layer1.0.conv3.weight')) found.block = 'bottleneck';
  else if (state.get('layer1.0.conv2.weight')) found.block = 'basic';
  const counts: number[] = [];
  for (const name of state.names) {
    const m = /^layer(\d+)\.(\d+)\./.exec(name);
    if (m) counts[Number(m[1]) - 1] = Math.max(counts[Number(m[1]) - 1] ?? 0, Number(m[2]) + 1);
  }
  if (counts.length) found.layers = Array.from(counts, (n) => n ?? 0);
  // layer1's bottleneck width is planes 64 × widthPerGroup/64, i.e. widthPerGroup itself.
  const width = state.get('layer1.0.conv1.weight');
  if (width?.shape.length === 4) found.widthPerGroup = found.block === 'bottleneck' ? width.shape[0] : 64;
  for (const [depth, preset] of Object.entries(RESNET_PRESETS)) {
    if (preset.block === found.block && JSON.stringify(preset.layers) === JSON.stringify(found.layers) && found.widthPerGroup === 64) {
      found.preset = `resnet${Number(depth) as ResNetDepth}`;
    }
  }
  return found;
}

function configHint(state: StateDict): string {
  const f = resNetParamsFromState(state);
  if (f.block === undefined || f.layers === undefined) {
    return 'the file does not look like a torchvision ResNet state dict (no layer1.0.conv1 / conv2 weights).';
  }
  const args = `block='${f.block}', layers=[${f.layers.join(',')}], widthPerGroup=${f.widthPerGroup}, numClasses=${f.numClasses}`;
  return f.preset ? `the file holds a ${f.preset} (${args}); use that preset.` : `the file holds a ResNet with ${args}; build the model with those parameters.`;
}

function describeModel(model: tf.LayersModel): string {
  const has = (name: string): boolean => model.layers.some((layer) => layer.name === name);
  const counts: number[] = [];
  for (const layer of model.layers) {
    const m = /^layer(\d+)_(\d+)$/.exec(layer.name);
    if (m) counts[Number(m[1]) - 1] = Math.max(counts[Number(m[1]) - 1] ?? 0, Number(m[2]) + 1);
  }
  const kind = has('layer1_0_conv3') ? 'bottleneck' : 'basic';
  const width = (model.getLayer('layer1_0_conv1').weights[0].shape as number[])[3];
  const classes = (model.getLayer(RESNET_HEAD).outputShape as number[])[1];
  return `block '${kind}', layers [${counts.join(',')}]${kind === 'bottleneck' ? `, widthPerGroup ${width}` : ''}, numClasses ${classes}`;
}

/**
 * Copies a torchvision ResNet state dict into a model from `buildResNet`,
 * strictly: a missing, mis-shaped or left-over parameter is a UserError that
 * says which ResNet the file holds, and the model is left untouched.
 */
export function importTorchResNet(model: tf.LayersModel, state: StateDict): void {
  importTorchWeights(model, state, { what: `this ResNet (${describeModel(model)})`, hint: configHint(state) });
}

/** Builds the ResNet a state dict describes (head size from the file unless numClasses is given) and loads it. */
export function resNetFromStateDict(state: StateDict, params: Partial<ResNetParams> = {}): tf.LayersModel {
  const numClasses = params.numClasses ?? numClassesFromStateDict(state, `${RESNET_HEAD}.weight`);
  return buildAndImport(() => buildResNet({ ...params, numClasses }), (model) => importTorchResNet(model, state));
}
