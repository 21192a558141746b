/**
 * The ONNX export of tfjs layers-models, run on onnx:cpu, against the tfjs
 * cpu backend on the same weights: logits, and layer taps transposed back to
 * NHWC, to 1e-4 of the largest absolute value — for the tiny-cnn golden
 * model, every built-in architecture at a small size with seeded random
 * weights (odd input sizes, so that ceil-mode pools and asymmetric padding
 * are exercised), a model holding every other supported layer kind, and a
 * nested model.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { withSeededMathRandom } from '../src/core/random.ts';
import { addNhwcOutputs, exportLayersModel, type ExportOptions } from '../src/core/tensor/onnx/export.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { OnnxSession, type HostTensor } from '../src/core/tensor/onnx/session.ts';
import { buildDenseNet } from '../src/plugins/architectures/densenet-model.ts';
import { buildGoogLeNet } from '../src/plugins/architectures/googlenet-model.ts';
import { buildMobileNetV2 } from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { buildResNet } from '../src/plugins/architectures/resnet-model.ts';
import { buildSmallCnn } from '../src/plugins/architectures/small-cnn-model.ts';
import { ROOT } from './helpers.ts';
import { randomizeWeights } from './nets.ts';

const TINY_CNN = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const BATCH = 2;

interface OnnxRun {
  readonly scores: HostTensor;
  readonly taps: HostTensor[];
  readonly layerValues: ReadonlyMap<string, string>;
}

/** The model exported, serialised and run on onnx:cpu, with NHWC taps at `layers`. */
async function runOnnx(model: tf.LayersModel, x: tf.Tensor4D, layers: readonly string[], options: Partial<ExportOptions> = {}): Promise<OnnxRun> {
  const exported = exportLayersModel(model, { batch: x.shape[0], ...options });
  const builder = GraphBuilder.from(exported.graph);
  const tapValues = layers.map((layer) => {
    const value = exported.layerValues.get(layer);
    assert.ok(value !== undefined, `no ONNX value for layer ${layer}`);
    return value;
  });
  const taps = addNhwcOutputs(builder, exported.layouts, tapValues);
  const session = await OnnxSession.create(serializeGraph(builder.build()), { device: 'cpu', threads: 1 });
  try {
    const [scores, ...tapped] = await session.run({ [exported.input]: { data: x.dataSync() as Float32Array, shape: x.shape } }, [exported.output, ...taps]);
    return { scores, taps: tapped, layerValues: exported.layerValues };
  } finally {
    await session.release();
  }
}

/** The tfjs outputs of the named layers (top-level layers of `model`). */
function tfjsOutputs(model: tf.LayersModel, x: tf.Tensor, layers: readonly string[]): HostTensor[] {
  const probe = tf.model({ inputs: model.inputs, outputs: layers.map((name) => model.getLayer(name).output as tf.SymbolicTensor) });
  const outputs = probe.predict(x) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(outputs) ? outputs : [outputs];
  const host = list.map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
  tf.dispose(list);
  return host;
}

function assertClose(actual: HostTensor, expected: HostTensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.data.length; i++) {
    scale = Math.max(scale, Math.abs(expected.data[i]));
    worst = Math.max(worst, Math.abs(actual.data[i] - expected.data[i]));
  }
  assert.ok(scale > 0, `${what}: the tfjs output is all zeros, which compares nothing`);
  assert.ok(worst <= 1e-4 * scale, `${what}: max |onnx − tfjs| = ${worst}, max |tfjs| = ${scale}`);
}

/** Logits and taps of the ONNX export equal tfjs's on the same input. */
async function assertSameAsTfjs(model: tf.LayersModel, x: tf.Tensor4D, layers: readonly string[]): Promise<OnnxRun> {
  const onnx = await runOnnx(model, x, layers);
  const [logits, ...taps] = tfjsOutputs(model, x, [model.outputLayers[0].name, ...layers]);
  assertClose(onnx.scores, logits, `${model.name} logits`);
  layers.forEach((layer, i) => assertClose(onnx.taps[i], taps[i], `${model.name} layer ${layer}`));
  return onnx;
}

function seeded<T extends tf.LayersModel>(build: () => T, seed = 1): T {
  const model = withSeededMathRandom(seed, build);
  randomizeWeights(model, seed);
  return model;
}

function images(size: number, seed = 5, height = size): tf.Tensor4D {
  return tf.randomNormal([BATCH, height, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

describe('ONNX export, onnx:cpu against tfjs cpu', () => {
  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
  });
  after(() => tf.disposeVariables());

  it('tiny-cnn golden model: logits and taps', async () => {
    const model = await loadLayersModel(TINY_CNN);
    const inputs = await readNpy(path.join(TINY_CNN, 'inputs.npy'));
    const x = tf.slice(tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]), [0, 0, 0, 0], [BATCH, -1, -1, -1]);
    const run = await assertSameAsTfjs(model, x, ['conv1', 'pool1', 'bn2', 'relu3', 'gap']);
    assert.equal(run.layerValues.get('relu3'), 'relu3');
    model.dispose();
  });

  it('small-cnn, with batch norm and with biased convolutions and dropout', async () => {
    for (const batchNorm of [true, false]) {
      const model = seeded(() => buildSmallCnn({ numClasses: 3, inputSize: [45, 45], width: 4, blocks: 3, batchNorm, dropout: 0.3 }));
      await assertSameAsTfjs(model, images(45), ['features_0_conv', 'pool0', 'features_2_relu']);
      model.dispose();
    }
  });

  it('mobilenet-v2 (depthwise convolutions, ReLU6, residual adds) at 45×45; values carry torch module paths', async () => {
    const model = seeded(() => buildMobileNetV2({ widthMult: 0.25, numClasses: 3, inputSize: 45 }));
    const run = await assertSameAsTfjs(model, images(45), ['features_1_conv_0_0', 'features_3_add', 'features_18_2', 'avgpool']);
    assert.equal(run.layerValues.get('features_18_2'), 'features.18.2');
    assert.equal(run.layerValues.get('features_1_conv_0_0'), 'features.1.conv.0.0');
    model.dispose();
  });

  it('resnet (basic blocks, downsampling) at 45×45', async () => {
    const model = seeded(() => buildResNet({ block: 'basic', layers: [1, 1, 1, 1], numClasses: 3, inputSize: 45 }));
    const run = await assertSameAsTfjs(model, images(45), ['maxpool', 'layer2_0_add', 'layer4_0']);
    assert.equal(run.layerValues.get('layer4_0'), 'layer4.0');
    model.dispose();
  });

  it('densenet (concatenations, transition average pools) at 45×45', async () => {
    const model = seeded(() => buildDenseNet({ growthRate: 4, blockConfig: [2, 1, 1, 1], numInitFeatures: 8, bnSize: 2, numClasses: 3, inputSize: 45 }));
    await assertSameAsTfjs(model, images(45), ['features_pool0', 'features_denseblock1_denselayer2_cat', 'features_transition1_pool', 'features_norm5', 'features_norm5_relu']);
    model.dispose();
  });

  it('googlenet with transformInput and ceil-mode pools at 45×45', async () => {
    const model = seeded(() => buildGoogLeNet({ numClasses: 3, inputSize: 45, transformInput: true }));
    await assertSameAsTfjs(model, images(45), ['transforminput', 'maxpool1', 'inception3a', 'maxpool4', 'inception5b']);
    model.dispose();
  });

  it('every other supported layer kind: asymmetric same padding, dilation, depthwise multiplier, same pools, merges, Dense on images, Flatten', async () => {
    const model = seeded(layerZoo);
    const taps = ['stride2_same', 'even_kernel', 'depthwise', 'dilated', 'max_same', 'avg_same', 'channel_softmax', 'merged', 'max_after_pad', 'avg_after_pad', 'relu4', 'padded', 'pixel_dense', 'flatten', 'bn_flat'];
    const x = images(45, 7, 46);
    const run = await runOnnx(model, x, taps);
    const [probabilities, logits, ...expected] = tfjsOutputs(model, x, ['probabilities', 'logits', ...taps]);
    assertClose(run.scores, probabilities, 'zoo probabilities');
    taps.forEach((layer, i) => assertClose(run.taps[i], expected[i], `zoo layer ${layer}`));
    const withoutSoftmax = await runOnnx(model, x, [], { leaveOutSoftmax: true });
    assertClose(withoutSoftmax.scores, logits, 'zoo logits with the softmax left out');
    model.dispose();
  });

  it('layers inside a nested model are named by their path', async () => {
    const model = seeded(nestedModel);
    const x = images(21);
    const run = await runOnnx(model, x, ['stem', 'block/conv', 'block']);
    const [stem] = tfjsOutputs(model, x, ['stem']);
    const inner = model.getLayer('block') as unknown as tf.LayersModel;
    const [conv, block] = tfjsOutputs(inner, tf.tensor(stem.data, [...stem.shape]), ['conv', 'relu']);
    assertClose(run.taps[0], stem, 'stem');
    assertClose(run.taps[1], conv, 'block/conv');
    assertClose(run.taps[2], block, 'block');
    assert.equal(run.layerValues.get('block/conv'), 'block/conv');
    assert.equal(run.layerValues.get('conv'), 'block/conv', 'the bare name of a layer called once names it too');
    assertClose(run.scores, tfjsOutputs(model, x, ['head'])[0], 'nested logits');
    model.dispose();
  });

  it('a softmax fused into the last Dense is left out on request; a flat (non-image) input needs no transpose', async () => {
    const input = tf.input({ shape: [6], name: 'features' });
    const model = seeded(() => tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, activation: 'softmax', name: 'head' }).apply(input) as tf.SymbolicTensor }));
    const x = tf.randomNormal([BATCH, 6], 0, 1, 'float32', 9);
    const exported = exportLayersModel(model, { batch: BATCH, leaveOutSoftmax: true });
    assert.ok(!exported.graph.nodes.some((node) => node.op === 'Transpose' || node.op === 'Softmax'));
    const session = await OnnxSession.create(serializeGraph(exported.graph), { device: 'cpu', threads: 1 });
    const [scores] = await session.run({ [exported.input]: { data: x.dataSync() as Float32Array, shape: x.shape } }, [exported.output]);
    await session.release();
    const [kernel, bias] = model.getLayer('head').getWeights();
    const logits = tf.add(tf.matMul(x, kernel), bias);
    assertClose(scores, { data: logits.dataSync() as Float32Array, shape: logits.shape }, 'logits before the fused softmax');
    model.dispose();
  });

  it('a layer class outside the vocabulary is a UserError naming the layer and its class', () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const leaky = tf.layers.leakyReLU({ name: 'leaky' }).apply(tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'c' }).apply(input) as tf.SymbolicTensor);
    const model = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(leaky as tf.SymbolicTensor) as tf.SymbolicTensor) as tf.SymbolicTensor });
    assert.throws(() => exportLayersModel(model, { batch: 1 }), (error: Error) => isUserError(error) && /leaky/.test(error.message) && /LeakyReLU/.test(error.message));
    model.dispose();
  });

  it('an activation outside the vocabulary is a UserError too', () => {
    const input = tf.input({ shape: [4] });
    const model = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2, activation: 'selu', name: 'odd' }).apply(input) as tf.SymbolicTensor });
    assert.throws(() => exportLayersModel(model, { batch: 1 }), (error: Error) => isUserError(error) && /odd/.test(error.message) && /selu/.test(error.message));
    model.dispose();
  });
});

/** One of every supported layer kind the architectures do not already cover, on a 46×45 input. */
function layerZoo(): tf.LayersModel {
  type Sym = tf.SymbolicTensor;
  const L = tf.layers;
  const input = tf.input({ shape: [46, 45, 3], name: 'zoo_input' });
  // 46 → 23 pads (0, 1), 45 → 23 pads (1, 1); the even kernel pads 45 by (1, 2).
  const a = L.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'stride2_same' }).apply(input) as Sym;
  const b = L.conv2d({ filters: 6, kernelSize: 4, strides: 2, padding: 'same', activation: 'elu', name: 'even_kernel' }).apply(input) as Sym;
  const c = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', useBias: true, activation: 'tanh', name: 'depthwise' }).apply(input) as Sym;
  let x = L.concatenate({ name: 'cat' }).apply([a, b, c]) as Sym;
  x = L.conv2d({ filters: 8, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'sigmoid', name: 'dilated' }).apply(x) as Sym;
  const p = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'max_same' }).apply(x) as Sym;
  const q = L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avg_same' }).apply(x) as Sym;
  const s = L.activation({ activation: 'softmax', name: 'channel_softmax' }).apply(q) as Sym;
  const sum = L.add({ name: 'sum' }).apply([p, q]) as Sym;
  const product = L.multiply({ name: 'product' }).apply([p, s]) as Sym;
  let y = L.average({ name: 'merged' }).apply([sum, product, q]) as Sym;
  // Zero padding before pools over values of either sign (tanh): ONNX Runtime must not fold it into the pools' own padding.
  const maxAfterPad = L.maxPooling2d({ poolSize: 3, strides: 2, name: 'max_after_pad' }).apply(L.zeroPadding2d({ padding: 1, name: 'pad_max' }).apply(c) as Sym) as Sym;
  const avgAfterPad = L.averagePooling2d({ poolSize: 3, strides: 2, name: 'avg_after_pad' }).apply(L.zeroPadding2d({ padding: 1, name: 'pad_avg' }).apply(c) as Sym) as Sym;
  y = L.concatenate({ name: 'cat_pools' }).apply([y, maxAfterPad, avgAfterPad]) as Sym;
  y = L.batchNormalization({ name: 'bn' }).apply(y) as Sym;
  y = L.reLU({ maxValue: 0.5, name: 'relu4' }).apply(y) as Sym;
  y = L.activation({ activation: 'softplus', name: 'softplus' }).apply(y) as Sym;
  y = L.activation({ activation: 'relu6', name: 'relu6' }).apply(y) as Sym;
  y = L.zeroPadding2d({ padding: [[1, 2], [0, 3]], name: 'padded' }).apply(y) as Sym;
  y = L.averagePooling2d({ poolSize: 2, padding: 'valid', name: 'avg_valid' }).apply(y) as Sym;
  y = L.dense({ units: 5, activation: 'relu', name: 'pixel_dense' }).apply(y) as Sym;
  y = L.flatten({ name: 'flatten' }).apply(y) as Sym;
  y = L.dropout({ rate: 0.3, name: 'dropout' }).apply(y) as Sym;
  y = L.dense({ units: 7, activation: 'tanh', name: 'hidden' }).apply(y) as Sym;
  y = L.batchNormalization({ name: 'bn_flat' }).apply(y) as Sym;
  y = L.dense({ units: 4, name: 'logits' }).apply(y) as Sym;
  const probabilities = L.softmax({ name: 'probabilities' }).apply(y) as Sym;
  return tf.model({ inputs: input, outputs: probabilities, name: 'zoo' });
}

/** An outer model whose middle is a nested model `block` (conv → relu). */
function nestedModel(): tf.LayersModel {
  type Sym = tf.SymbolicTensor;
  const innerInput = tf.input({ shape: [11, 11, 4], name: 'block_input' });
  const conv = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'conv' }).apply(innerInput) as Sym;
  const inner = tf.model({ inputs: innerInput, outputs: tf.layers.reLU({ name: 'relu' }).apply(conv) as Sym, name: 'block' });
  const input = tf.input({ shape: [21, 21, 3], name: 'outer_input' });
  const stem = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'stem' }).apply(input) as Sym;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(inner.apply(stem) as Sym) as Sym;
  return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, name: 'head' }).apply(pooled) as Sym, name: 'outer' });
}
