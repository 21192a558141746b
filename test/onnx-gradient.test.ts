/**
 * Gradient graphs over ONNX (src/core/tensor/onnx/gradient.ts), run on
 * onnx:cpu, against tfjs on its cpu backend, to 1e-4 of the largest absolute
 * reference value:
 * - each op's backward rule on a hand-built graph against tf.grad of the same
 *   computation (the forward checked too, so that the reference computes what
 *   the ONNX op does): strided, dilated, grouped, depthwise and
 *   asymmetrically padded convolutions, max pooling with ties and ceil mode,
 *   average pooling with and without counted pads, broadcasting arithmetic,
 *   matrix products, shape ops, and the ops PyTorch exports bring (HardSwish
 *   and kin at PyTorch's kinks, LayerNormalization, InstanceNormalization
 *   as GroupNorm exports it, reductions with max and min ties, Max and Min
 *   with ties split evenly, PRelu and kin, ConvTranspose, DepthToSpace,
 *   nearest Resize, Slice, Split, Gather); an op without a rule refused up
 *   front;
 * - whole exported models against the tfjs engine: input and multi-layer
 *   gradients (gradients.ts), guided backprop and DeepLift
 *   (modified-backprop.ts), forward from a layer, with and without a residual
 *   connection that needs the input.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { seededRandom, withSeededMathRandom } from '../src/core/random.ts';
import { forwardFromLayer, inputGradient, layerGradients, layerOutputs } from '../src/core/tensor/gradients.ts';
import { deepLiftRules, guidedBackpropRules, modifiedInputGradient } from '../src/core/tensor/modified-backprop.ts';
import { exportLayersModel } from '../src/core/tensor/onnx/export.ts';
import { buildForwardFromValue, buildGradientGraph, undifferentiableOps, type GradientRule } from '../src/core/tensor/onnx/gradient.ts';
import { int64Tensor, type Attribute, type Graph } from '../src/core/tensor/onnx/graph.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { OnnxSession, type HostTensor } from '../src/core/tensor/onnx/session.ts';
import { buildDenseNet } from '../src/plugins/architectures/densenet-model.ts';
import { buildGoogLeNet } from '../src/plugins/architectures/googlenet-model.ts';
import { buildMobileNetV2 } from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { buildResNet } from '../src/plugins/architectures/resnet-model.ts';
import { ROOT } from './helpers.ts';
import { randomizeWeights } from './nets.ts';

const TINY_CNN = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');

// ------------------------------------------------------------------ helpers

function uniform(count: number, seed: number, low = -1, high = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => low + (high - low) * random());
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Runs the graph and returns the named outputs. It fetches every output, in
 * the graph's order: onnxruntime-node 1.23.2 keys the results of a fetch of
 * some outputs wrongly (fetching [B] of outputs [A, B] returns B's data under
 * the key A).
 */
async function run(graph: Graph, feeds: Record<string, HostTensor>, outputs: readonly string[]): Promise<HostTensor[]> {
  const session = await OnnxSession.create(serializeGraph(graph), { device: 'cpu', threads: 1 });
  try {
    const all = await session.run(feeds, session.outputNames);
    return outputs.map((name) => {
      const at = session.outputNames.indexOf(name);
      assert.ok(at >= 0, `${name} is not among the graph's outputs ${session.outputNames.join(', ')}`);
      return all[at];
    });
  } finally {
    await session.release();
  }
}

const host = (t: tf.Tensor): HostTensor => ({ data: Float32Array.from(t.dataSync()), shape: t.shape });

function assertClose(actual: HostTensor, expected: HostTensor, what: string, tolerance = 1e-4): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.data.length; i++) {
    scale = Math.max(scale, Math.abs(expected.data[i]));
    worst = Math.max(worst, Math.abs(actual.data[i] - expected.data[i]));
  }
  assert.ok(scale > 0, `${what}: the reference is all zeros, which compares nothing`);
  assert.ok(worst <= tolerance * scale, `${what}: max |onnx − tfjs| = ${worst}, max |tfjs| = ${scale}`);
}

const toNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);
const toNchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);

// ------------------------------------------------------------------ per-op checks

interface OpCase {
  readonly name: string;
  /** NCHW (or any) shape of the graph input x. */
  readonly shape: number[];
  /** x's values (default: uniform in [-1, 1]). */
  readonly values?: Float32Array;
  /** The op(s) under test, appended to the graph after x; returns the output value. */
  readonly onnx: (b: GraphBuilder, x: string) => string;
  /** The same computation in tfjs, same layouts in and out. */
  readonly tfjs: (x: tf.Tensor) => tf.Tensor;
  /** Intermediate values whose gradients to check too, with their tfjs twin computations from x. */
  readonly layers?: ReadonlyArray<{ readonly onnx: string; readonly tfjs: (x: tf.Tensor) => tf.Tensor; readonly rest: (x: tf.Tensor, layer: tf.Tensor) => tf.Tensor }>;
}

/**
 * Builds x → op → Flatten as the score, asks for the input gradient (and the
 * output's own activations and gradient), and compares with tfjs: forward,
 * and tf.grad of Σ score·mask for a random (not one-hot) mask.
 */
async function checkOp(c: OpCase, seed = 1): Promise<void> {
  const b = new GraphBuilder(c.name);
  const x = b.addInput('x', c.shape);
  const y = c.onnx(b, x);
  const yShape = b.shape(y);
  const score = b.op('Flatten', [y], 'score', [yShape[0], size(yShape.slice(1))], { axis: { int: 1 } });
  b.addOutput(score);
  const layerValues = (c.layers ?? []).map((layer) => layer.onnx);
  const built = buildGradientGraph(b.build(), { input: x, score, layers: [y, ...layerValues], inputGradient: true, rule: 'plain' });
  const xData = c.values ?? uniform(size(c.shape), seed);
  const mask = uniform(size(yShape), seed + 100);
  const maskShape = [yShape[0], size(yShape.slice(1))];
  const outputs = await run(built.graph, { x: { data: xData, shape: c.shape }, [built.targets]: { data: mask, shape: maskShape } }, [built.activations[0], built.gradients[0], built.input as string, ...built.gradients.slice(1)]);
  const [forward, outputGradient, xGradient, ...layerGradients] = outputs;
  const xt = tf.tensor(xData, c.shape);
  const maskT = tf.tensor(mask, maskShape);
  const scoreOf = (out: tf.Tensor) => tf.sum(tf.mul(tf.reshape(out, maskShape), maskT));
  assertClose(forward, host(c.tfjs(xt)), `${c.name}: forward`, 1e-5);
  assertClose(outputGradient, { data: mask, shape: yShape }, `${c.name}: gradient at the output`, 0);
  assertClose(xGradient, host(tf.grad((input: tf.Tensor) => scoreOf(c.tfjs(input)))(xt)), `${c.name}: input gradient`);
  (c.layers ?? []).forEach((layer, i) => {
    const at = layer.tfjs(xt);
    assertClose(layerGradients[i], host(tf.grad((value: tf.Tensor) => scoreOf(layer.rest(xt, value)))(at)), `${c.name}: gradient at ${layer.onnx}`);
  });
  tf.dispose([xt, maskT]);
}

const attrs = (entries: Record<string, number | number[] | string>): Record<string, Attribute> =>
  Object.fromEntries(Object.entries(entries).map(([key, value]) => [key, typeof value === 'number' ? { int: value } : typeof value === 'string' ? { string: value } : { ints: value }]));

interface ConvSpec {
  readonly inputs: number;
  readonly outputs: number;
  readonly kernel: [number, number];
  readonly strides?: [number, number];
  readonly dilations?: [number, number];
  /** [top, left, bottom, right], as ONNX orders them. */
  readonly pads?: [number, number, number, number];
  readonly group?: number;
  readonly bias?: boolean;
}

/** A dilated kernel written out with zeros between its taps, [M, C/g, kh, kw]. */
function dilatedKernel(w: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [m, c, kh, kw] = w.shape;
  const spread = tf.pad(tf.reshape(w, [m, c, kh, 1, kw, 1]), [[0, 0], [0, 0], [0, 0], [0, dh - 1], [0, 0], [0, dw - 1]]);
  return tf.slice(tf.reshape(spread, [m, c, kh * dh, kw * dw]) as tf.Tensor4D, [0, 0, 0, 0], [m, c, (kh - 1) * dh + 1, (kw - 1) * dw + 1]);
}

/** ONNX Conv in tfjs (NCHW in and out): explicit pads, the dilation spread into the kernel, one conv2d per group. */
function tfjsConv(x: tf.Tensor, weights: Float32Array, bias: Float32Array | undefined, spec: ConvSpec): tf.Tensor {
  const group = spec.group ?? 1;
  const [top, left, bottom, right] = spec.pads ?? [0, 0, 0, 0];
  const w = dilatedKernel(tf.tensor4d(weights, [spec.outputs, spec.inputs / group, ...spec.kernel]), spec.dilations ?? [1, 1]);
  const padded = tf.pad(toNhwc(x), [[0, 0], [top, bottom], [left, right], [0, 0]]) as tf.Tensor4D;
  const inPer = spec.inputs / group;
  const outPer = spec.outputs / group;
  const parts = Array.from({ length: group }, (_, g) => {
    const xs = tf.slice(padded, [0, 0, 0, g * inPer], [-1, -1, -1, inPer]) as tf.Tensor4D;
    const filter = tf.transpose(tf.slice(w, [g * outPer, 0, 0, 0], [outPer, -1, -1, -1]), [2, 3, 1, 0]) as tf.Tensor4D;
    return tf.conv2d(xs, filter, spec.strides ?? [1, 1], 'valid');
  });
  let y: tf.Tensor = parts.length === 1 ? parts[0] : tf.concat(parts, 3);
  if (bias) y = tf.add(y, bias);
  return toNchw(y);
}

function outSize(inSize: number, kernel: number, stride: number, dilation: number, before: number, after: number, ceil = false): number {
  const span = inSize + before + after - ((kernel - 1) * dilation + 1);
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // A last window starting in the end padding is dropped (PyTorch's rule, which ONNX adopted).
  if (ceil && (out - 1) * stride >= inSize + before) out -= 1;
  return out;
}

function convCase(name: string, shape: [number, number, number, number], spec: ConvSpec, seed: number): OpCase {
  const group = spec.group ?? 1;
  const weights = uniform(spec.outputs * (spec.inputs / group) * spec.kernel[0] * spec.kernel[1], seed);
  const bias = spec.bias ? uniform(spec.outputs, seed + 1) : undefined;
  const [top, left, bottom, right] = spec.pads ?? [0, 0, 0, 0];
  const strides = spec.strides ?? [1, 1];
  const dilations = spec.dilations ?? [1, 1];
  const outShape = [shape[0], spec.outputs, outSize(shape[2], spec.kernel[0], strides[0], dilations[0], top, bottom), outSize(shape[3], spec.kernel[1], strides[1], dilations[1], left, right)];
  return {
    name,
    shape,
    onnx: (b, x) => {
      const inputs = [x, b.float32('w', weights, [spec.outputs, spec.inputs / group, ...spec.kernel])];
      if (bias) inputs.push(b.float32('bias', bias, [spec.outputs]));
      return b.op('Conv', inputs, 'y', outShape, attrs({ kernel_shape: spec.kernel, strides, dilations, pads: [top, left, bottom, right], group }));
    },
    tfjs: (x) => tfjsConv(x, weights, bias, spec),
  };
}

interface PoolSpec {
  readonly kernel: [number, number];
  readonly strides: [number, number];
  readonly pads?: [number, number, number, number];
  readonly ceil?: boolean;
  readonly countIncludePad?: boolean;
}

function poolOutShape(shape: readonly number[], spec: PoolSpec): number[] {
  const [top, left, bottom, right] = spec.pads ?? [0, 0, 0, 0];
  return [shape[0], shape[1], outSize(shape[2], spec.kernel[0], spec.strides[0], 1, top, bottom, spec.ceil), outSize(shape[3], spec.kernel[1], spec.strides[1], 1, left, right, spec.ceil)];
}

function poolAttributes(spec: PoolSpec, op: 'MaxPool' | 'AveragePool'): Record<string, Attribute> {
  return attrs({
    kernel_shape: spec.kernel,
    strides: spec.strides,
    pads: spec.pads ?? [0, 0, 0, 0],
    ceil_mode: spec.ceil ? 1 : 0,
    ...(op === 'AveragePool' ? { count_include_pad: spec.countIncludePad ? 1 : 0 } : {}),
  });
}

/** The input padded as the pool pads it, plus what a ceil-mode last window overhangs. */
function poolPadding(shape: readonly number[], spec: PoolSpec): [number, number][] {
  const out = poolOutShape(shape, spec);
  const [top, left, bottom, right] = spec.pads ?? [0, 0, 0, 0];
  const extra = (axis: number, before: number, after: number) => Math.max(0, (out[axis] - 1) * spec.strides[axis - 2] + spec.kernel[axis - 2] - (shape[axis] + before + after));
  return [[0, 0], [top, bottom + extra(2, top, bottom)], [left, right + extra(3, left, right)], [0, 0]];
}

function tfjsMaxPool(x: tf.Tensor, spec: PoolSpec): tf.Tensor {
  const padded = tf.pad(toNhwc(x), poolPadding(x.shape, spec), -Infinity) as tf.Tensor4D;
  return toNchw(tf.maxPool(padded, spec.kernel, spec.strides, 'valid'));
}

/**
 * ONNX AveragePool as ONNX Runtime 1.23 computes it: the window sum over the
 * input, divided by the in-bounds cells (count_include_pad 0) or by the
 * kernel's size (count_include_pad 1 — even where a ceil-mode window
 * overhangs the padded input, where PyTorch divides by the part of the window
 * inside the padded input).
 */
function tfjsAveragePool(x: tf.Tensor, spec: PoolSpec): tf.Tensor {
  const [, , h, w] = x.shape;
  const out = poolOutShape(x.shape, spec);
  const [top, left] = spec.pads ?? [0, 0, 0, 0];
  const padded = tf.pad(toNhwc(x), poolPadding(x.shape, spec)) as tf.Tensor4D;
  const sums = tf.mul(tf.avgPool(padded, spec.kernel, spec.strides, 'valid'), spec.kernel[0] * spec.kernel[1]);
  const divisor = (o: number, axis: 0 | 1) => {
    const [size, before] = axis === 0 ? [h, top] : [w, left];
    const start = o * spec.strides[axis] - before;
    const end = start + spec.kernel[axis];
    return spec.countIncludePad ? spec.kernel[axis] : Math.min(end, size) - Math.max(start, 0);
  };
  const divisors = new Float32Array(out[2] * out[3]);
  for (let i = 0; i < out[2]; i++) for (let j = 0; j < out[3]; j++) divisors[i * out[3] + j] = divisor(i, 0) * divisor(j, 1);
  return toNchw(tf.div(sums, tf.tensor4d(divisors, [1, out[2], out[3], 1])));
}

function poolCase(op: 'MaxPool' | 'AveragePool', name: string, shape: [number, number, number, number], spec: PoolSpec, values?: Float32Array): OpCase {
  return {
    name,
    shape,
    values,
    onnx: (b, x) => b.op(op, [x], 'y', poolOutShape(shape, spec), poolAttributes(spec, op)),
    tfjs: (x) => (op === 'MaxPool' ? tfjsMaxPool(x, spec) : tfjsAveragePool(x, spec)),
  };
}

/** |x| as x·sign(x): slope 0 at 0, as PyTorch's abs (tfjs's abs has slope −1 there). */
const absZeroSlope = (x: tf.Tensor): tf.Tensor => tf.mul(x, tf.sign(x));

/** Values from a few levels only, so that pooling windows hold ties. */
function tied(count: number, seed: number, levels = 3): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => Math.floor(random() * levels) - 1);
}

describe('ONNX gradient graphs: each op against tf.grad (onnx:cpu, tfjs cpu)', () => {
  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
  });

  it('Conv: plain, strided with asymmetric pads, dilated, dilated and strided, with bias', async () => {
    await checkOp(convCase('conv 3×3', [2, 3, 7, 6], { inputs: 3, outputs: 4, kernel: [3, 3], pads: [1, 1, 1, 1] }, 1));
    await checkOp(convCase('conv 3×3 stride 2, pads 0,1,1,0', [2, 3, 8, 7], { inputs: 3, outputs: 5, kernel: [3, 3], strides: [2, 2], pads: [0, 1, 1, 0] }, 2));
    await checkOp(convCase('conv 3×2 stride 3×2 leaving rows unread', [2, 2, 10, 9], { inputs: 2, outputs: 3, kernel: [3, 2], strides: [3, 2], bias: true }, 3));
    await checkOp(convCase('conv 3×3 dilation 2', [2, 3, 9, 8], { inputs: 3, outputs: 4, kernel: [3, 3], dilations: [2, 2], pads: [2, 1, 2, 1] }, 4));
    await checkOp(convCase('conv 3×3 dilation 2 stride 2', [2, 3, 11, 10], { inputs: 3, outputs: 4, kernel: [3, 3], dilations: [2, 2], strides: [2, 2], pads: [1, 2, 2, 1] }, 5));
    await checkOp(convCase('conv 2×2 pads 0,0,1,1 (tfjs same)', [2, 3, 6, 6], { inputs: 3, outputs: 4, kernel: [2, 2], pads: [0, 0, 1, 1], bias: true }, 6));
    await checkOp(convCase('conv 3×3 pads 3 (beyond the kernel)', [1, 2, 5, 5], { inputs: 2, outputs: 3, kernel: [3, 3], pads: [3, 3, 3, 3] }, 7));
  });

  it('Conv: pointwise, grouped, depthwise (stride 1 and 2), depth multiplier', async () => {
    await checkOp(convCase('conv 1×1', [2, 6, 5, 5], { inputs: 6, outputs: 4, kernel: [1, 1], bias: true }, 11));
    await checkOp(convCase('conv 1×1 stride 2', [2, 6, 6, 5], { inputs: 6, outputs: 4, kernel: [1, 1], strides: [2, 2] }, 12));
    await checkOp(convCase('conv groups 2', [2, 4, 6, 6], { inputs: 4, outputs: 6, kernel: [3, 3], pads: [1, 1, 1, 1], group: 2 }, 13));
    await checkOp(convCase('depthwise 3×3', [2, 4, 7, 7], { inputs: 4, outputs: 4, kernel: [3, 3], pads: [1, 1, 1, 1], group: 4 }, 14));
    await checkOp(convCase('depthwise 3×3 stride 2 pads 0,0,1,1', [2, 4, 8, 8], { inputs: 4, outputs: 4, kernel: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1], group: 4 }, 15));
    await checkOp(convCase('depthwise multiplier 2', [2, 3, 6, 6], { inputs: 3, outputs: 6, kernel: [3, 3], pads: [1, 1, 1, 1], group: 3 }, 16));
  });

  it('BatchNormalization, alone and folded into the convolution before it', async () => {
    const channels = 4;
    const gamma = uniform(channels, 21, 0.5, 1.5);
    const beta = uniform(channels, 22);
    const mean = uniform(channels, 23);
    const variance = uniform(channels, 24, 0.5, 1.5);
    const bn = (b: GraphBuilder, x: string, name: string) => b.op('BatchNormalization', [x, b.float32('gamma', gamma, [channels]), b.float32('beta', beta, [channels]), b.float32('mean', mean, [channels]), b.float32('var', variance, [channels])], name, b.shape(x), { epsilon: { float: 1e-3 } });
    const tfjsBn = (x: tf.Tensor) => {
      const at = (v: Float32Array) => tf.tensor(v, [1, channels, ...new Array(x.rank - 2).fill(1)]);
      return tf.add(tf.mul(tf.div(tf.sub(x, at(mean)), tf.sqrt(tf.add(at(variance), 1e-3))), at(gamma)), at(beta));
    };
    await checkOp({ name: 'batch norm', shape: [2, channels, 5, 4], onnx: (b, x) => bn(b, x, 'y'), tfjs: tfjsBn });
    await checkOp({ name: 'batch norm on [n, c]', shape: [3, channels], onnx: (b, x) => bn(b, x, 'y'), tfjs: tfjsBn });
    const conv = convCase('conv', [2, 3, 6, 6], { inputs: 3, outputs: channels, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 25);
    const pointwise = convCase('conv', [2, 3, 6, 6], { inputs: 3, outputs: channels, kernel: [3, 3], pads: [1, 1, 1, 1] }, 26);
    for (const c of [conv, pointwise]) {
      await checkOp({ name: 'conv → batch norm → batch norm', shape: c.shape, onnx: (b, x) => bn(b, bn(b, c.onnx(b, x), 'z'), 'y'), tfjs: (x) => tfjsBn(tfjsBn(c.tfjs(x))) });
    }
  });

  it('activations: Relu, Clip (ReLU6), Sigmoid, Tanh, Elu, Softplus, LeakyRelu, with inputs exactly at the lower kinks', async () => {
    const shape = [2, 3, 4, 5];
    // (At x = 6 exactly tfjs's relu6 passes the gradient and the ONNX engine, reading the clipped output, does not.)
    const values = uniform(size(shape), 31, -8, 8);
    for (const i of [0, 7, 19]) values[i] = 0;
    const unary = (op: string, fn: (x: tf.Tensor) => tf.Tensor, attributes?: Record<string, Attribute>): OpCase => ({ name: op, shape, values, onnx: (b, x) => b.op(op, [x], 'y', shape, attributes), tfjs: fn });
    await checkOp(unary('Relu', tf.relu));
    await checkOp({ name: 'Clip(0, 6)', shape, values, onnx: (b, x) => b.op('Clip', [x, b.float32('lo', [0], []), b.float32('hi', [6], [])], 'y', shape), tfjs: tf.relu6 });
    await checkOp(unary('Sigmoid', tf.sigmoid));
    await checkOp(unary('Tanh', tf.tanh));
    await checkOp(unary('Elu', tf.elu, { alpha: { float: 1 } }));
    await checkOp(unary('Softplus', tf.softplus));
    await checkOp(unary('LeakyRelu', (x) => tf.leakyRelu(x, 0.2), { alpha: { float: 0.2 } }));
  });

  it('MaxPool: ties go to the first maximum; overlapping windows, pads, ceil mode', async () => {
    await checkOp(poolCase('MaxPool', 'max 2×2', [2, 3, 6, 7], { kernel: [2, 2], strides: [2, 2] }, tied(2 * 3 * 6 * 7, 41)));
    await checkOp(poolCase('MaxPool', 'max 3×3 stride 2 pads 1 (overlapping)', [2, 3, 9, 8], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, tied(2 * 3 * 9 * 8, 42)));
    await checkOp(poolCase('MaxPool', 'max 3×3 stride 2 ceil', [2, 2, 10, 9], { kernel: [3, 3], strides: [2, 2], ceil: true }, tied(2 * 2 * 10 * 9, 43)));
    await checkOp(poolCase('MaxPool', 'max 3×3 stride 1 pads 0,1,1,0', [1, 2, 6, 6], { kernel: [3, 3], strides: [1, 1], pads: [0, 1, 1, 0] }, tied(72, 44)));
    await checkOp(poolCase('MaxPool', 'max 2×2 stride 2 ceil, no ties', [2, 3, 7, 7], { kernel: [2, 2], strides: [2, 2], ceil: true }));
  });

  it('MaxPool reading a zero Pad after a Relu (ONNX Runtime may fold the pad into the pool)', async () => {
    const shape = [2, 3, 7, 7];
    const spec: PoolSpec = { kernel: [3, 3], strides: [2, 2] };
    const paddedShape = [2, 3, 9, 9];
    await checkOp({
      name: 'relu → pad → max 3×3 stride 2',
      shape,
      values: tied(size(shape), 45, 4),
      onnx: (b, x) => {
        const r = b.op('Relu', [x], 'r', shape);
        const p = b.op('Pad', [r, b.int64('pads', [0, 0, 1, 1, 0, 0, 1, 1])], 'p', paddedShape, { mode: { string: 'constant' } });
        return b.op('MaxPool', [p], 'y', poolOutShape(paddedShape, spec), poolAttributes(spec, 'MaxPool'));
      },
      tfjs: (x) => tfjsMaxPool(tf.pad(tf.relu(x), [[0, 0], [0, 0], [1, 1], [1, 1]]), spec),
    });
  });

  it('AveragePool: with and without counted pads, ceil mode, overhanging windows; GlobalAveragePool', async () => {
    await checkOp(poolCase('AveragePool', 'avg 2×2', [2, 3, 6, 7], { kernel: [2, 2], strides: [2, 2] }));
    for (const countIncludePad of [false, true]) {
      const count = countIncludePad ? 'counting pads' : 'not counting pads';
      await checkOp(poolCase('AveragePool', `avg 3×3 stride 1 pads 1, ${count}`, [2, 3, 6, 5], { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], countIncludePad }));
      await checkOp(poolCase('AveragePool', `avg 3×3 stride 2 pads 1 ceil, ${count}`, [2, 3, 8, 7], { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil: true, countIncludePad }));
      await checkOp(poolCase('AveragePool', `avg 2×2 stride 2 ceil, ${count}`, [2, 3, 7, 7], { kernel: [2, 2], strides: [2, 2], ceil: true, countIncludePad }));
      await checkOp(poolCase('AveragePool', `avg 2×2 stride 1 pads 0,0,1,1 (tfjs same), ${count}`, [2, 3, 5, 5], { kernel: [2, 2], strides: [1, 1], pads: [0, 0, 1, 1], countIncludePad }));
    }
    await checkOp({ name: 'global average pool', shape: [2, 3, 5, 4], onnx: (b, x) => b.op('GlobalAveragePool', [x], 'y', [2, 3, 1, 1]), tfjs: (x) => tf.mean(x, [2, 3], true) });
  });

  it('Pad (growing and cropping), Transpose, Flatten, Reshape, Identity', async () => {
    const shape = [2, 3, 5, 4];
    await checkOp({
      name: 'pad',
      shape,
      onnx: (b, x) => b.op('Pad', [x, b.int64('pads', [0, 1, 2, 0, 0, 0, 1, 3])], 'y', [2, 4, 8, 7], { mode: { string: 'constant' } }),
      tfjs: (x) => tf.pad(x, [[0, 0], [1, 0], [2, 1], [0, 3]]),
    });
    await checkOp({
      name: 'pad cropping',
      shape,
      onnx: (b, x) => b.op('Pad', [x, b.int64('pads', [0, 0, -1, 2, 0, 0, 1, -2])], 'y', [2, 3, 5, 4], { mode: { string: 'constant' } }),
      tfjs: (x) => tf.pad(tf.slice(x, [0, 0, 1, 0], [2, 3, 4, 2]), [[0, 0], [0, 0], [0, 1], [2, 0]]),
    });
    const depthwise = convCase('depthwise', [2, 3, 7, 8], { inputs: 3, outputs: 3, kernel: [3, 3], group: 3 }, 91);
    await checkOp({
      name: 'pad → depthwise conv (the backward conv pads less instead of a slice)',
      shape: [2, 3, 5, 6],
      onnx: (b, x) => depthwise.onnx(b, b.op('Pad', [x, b.int64('pads', [0, 0, 1, 1, 0, 0, 1, 1])], 'p', [2, 3, 7, 8], { mode: { string: 'constant' } })),
      tfjs: (x) => depthwise.tfjs(tf.pad(x, [[0, 0], [0, 0], [1, 1], [1, 1]])),
    });
    await checkOp({ name: 'transpose', shape, onnx: (b, x) => b.op('Transpose', [x], 'y', [2, 4, 3, 5], { perm: { ints: [0, 3, 1, 2] } }), tfjs: (x) => tf.transpose(x, [0, 3, 1, 2]) });
    await checkOp({
      name: 'reshape, flatten, identity',
      shape,
      onnx: (b, x) => {
        const r = b.op('Reshape', [x, b.int64('shape', [2, 15, -1])], 'r', [2, 15, 4]);
        const s = b.op('Sigmoid', [r], 's', [2, 15, 4]);
        const f = b.op('Flatten', [s], 'f', [2, 60], { axis: { int: 1 } });
        return b.op('Identity', [f], 'y', [2, 60]);
      },
      tfjs: (x) => tf.reshape(tf.sigmoid(tf.reshape(x, [2, 15, 4])), [2, 60]),
    });
  });

  it('Add, Sub, Mul, Div with broadcasting, over computed and constant operands', async () => {
    const shape = [2, 3, 4, 5];
    const channel = uniform(3, 51, 0.5, 1.5);
    const constant = (b: GraphBuilder) => b.float32('c', channel, [3, 1, 1]);
    const tfConstant = () => tf.tensor(channel, [3, 1, 1]);
    // a = x·x (full shape), s = mean over space (broadcast [n, c, 1, 1]), both computed from x.
    const parts = (b: GraphBuilder, x: string) => ({
      a: b.op('Mul', [x, x], 'a', shape),
      s: b.op('Add', [b.op('GlobalAveragePool', [x], 'g', [2, 3, 1, 1]), b.float32('two', [2], [])], 's', [2, 3, 1, 1]),
    });
    const tfParts = (x: tf.Tensor) => ({ a: tf.mul(x, x), s: tf.add(tf.mean(x, [2, 3], true), 2) });
    const ops: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = { Add: tf.add, Sub: tf.sub, Mul: tf.mul, Div: tf.div };
    for (const [op, fn] of Object.entries(ops)) {
      for (const swapped of [false, true]) {
        await checkOp({
          name: `${op}(${swapped ? 's, a' : 'a, s'})`,
          shape,
          onnx: (b, x) => {
            const { a, s } = parts(b, x);
            return b.op(op, swapped ? [s, a] : [a, s], 'y', shape);
          },
          tfjs: (x) => {
            const { a, s } = tfParts(x);
            return swapped ? fn(s, a) : fn(a, s);
          },
          layers: [
            { onnx: 's', tfjs: (x) => tfParts(x).s, rest: (x, s) => (swapped ? fn(s, tfParts(x).a) : fn(tfParts(x).a, s)) },
            { onnx: 'a', tfjs: (x) => tfParts(x).a, rest: (x, a) => (swapped ? fn(tfParts(x).s, a) : fn(a, tfParts(x).s)) },
          ],
        });
        await checkOp({
          name: `${op} with a constant ${swapped ? 'first' : 'second'}`,
          shape,
          onnx: (b, x) => b.op(op, swapped ? [constant(b), x] : [x, constant(b)], 'y', shape),
          tfjs: (x) => (swapped ? fn(tfConstant(), x) : fn(x, tfConstant())),
        });
      }
    }
  });

  it('Concat (every part and some parts differentiated)', async () => {
    const shape = [2, 3, 4, 4];
    await checkOp({
      name: 'concat of two branches',
      shape,
      onnx: (b, x) => b.op('Concat', [b.op('Relu', [x], 'r', shape), b.op('Tanh', [x], 't', shape), x], 'y', [2, 9, 4, 4], { axis: { int: 1 } }),
      tfjs: (x) => tf.concat([tf.relu(x), tf.tanh(x), x], 1),
    });
    const fixed = uniform(2 * 2 * 4 * 4, 61);
    await checkOp({
      name: 'concat with a constant',
      shape,
      onnx: (b, x) => b.op('Concat', [b.float32('k', fixed, [2, 2, 4, 4]), b.op('Sigmoid', [x], 's', shape)], 'y', [2, 5, 4, 4], { axis: { int: -3 } }),
      tfjs: (x) => tf.concat([tf.tensor(fixed, [2, 2, 4, 4]), tf.sigmoid(x)], 1),
    });
  });

  it('MatMul, Gemm (transposes, α, β, bias), Softmax', async () => {
    const shape = [3, 6];
    const w = uniform(6 * 4, 71);
    const bias = uniform(4, 72);
    await checkOp({ name: 'matmul', shape, onnx: (b, x) => b.op('MatMul', [x, b.float32('w', w, [6, 4])], 'y', [3, 4]), tfjs: (x) => tf.matMul(x, tf.tensor2d(w, [6, 4])) });
    await checkOp({ name: 'matmul, data second', shape, onnx: (b, x) => b.op('MatMul', [b.float32('w', w.slice(0, 12), [4, 3]), x], 'y', [4, 6]), tfjs: (x) => tf.matMul(tf.tensor2d(w.slice(0, 12), [4, 3]), x) });
    await checkOp({ name: 'matmul on rank 3', shape: [2, 3, 6], onnx: (b, x) => b.op('MatMul', [x, b.float32('w', w, [6, 4])], 'y', [2, 3, 4]), tfjs: (x) => tf.matMul(tf.reshape(x, [6, 6]), tf.tensor2d(w, [6, 4])).reshape([2, 3, 4]) });
    for (const [transA, transB] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      const aShape: [number, number] = transA ? [6, 3] : [3, 6];
      const bShape: [number, number] = transB ? [4, 6] : [6, 4];
      await checkOp({
        name: `gemm transA ${transA} transB ${transB}`,
        shape: aShape,
        onnx: (b, x) => b.op('Gemm', [x, b.float32('w', w, bShape), b.float32('b', bias, [4])], 'y', [3, 4], { alpha: { float: 0.5 }, beta: { float: 2 }, transA: { int: transA }, transB: { int: transB } }),
        tfjs: (x) => tf.add(tf.mul(tf.matMul(x, tf.tensor2d(w, bShape), transA === 1, transB === 1), 0.5), tf.mul(tf.tensor1d(bias), 2)),
      });
      await checkOp({
        name: `gemm, data second, transA ${transA} transB ${transB}`,
        shape: bShape,
        onnx: (b, x) => b.op('Gemm', [b.float32('w', w.slice(0, 18), transA ? [6, 3] : [3, 6]), x], 'y', [3, 4], { alpha: { float: 1.5 }, transA: { int: transA }, transB: { int: transB } }),
        tfjs: (x) => tf.mul(tf.matMul(tf.tensor2d(w.slice(0, 18), transA ? [6, 3] : [3, 6]), x, transA === 1, transB === 1), 1.5),
      });
    }
    await checkOp({ name: 'softmax', shape, onnx: (b, x) => b.op('Softmax', [x], 'y', shape, { axis: { int: 1 } }), tfjs: (x) => tf.softmax(x) });
  });

  it('HardSigmoid (PyTorch’s α = 1/6 and ONNX’s defaults), HardSwish, Erf, with inputs on both sides of the kinks', async () => {
    const shape = [2, 3, 4, 5];
    const values = uniform(size(shape), 131, -5, 5);
    // Near ±3 (PyTorch's kinks) and ±2.5 (those of α = 0.2, β = 0.5), never on them.
    [-3.01, -2.99, 2.99, 3.01, -3.2, 3.2, -2.51, -2.49, 2.49, 2.51, 0].forEach((v, i) => (values[i * 11] = v));
    // PyTorch: hardsigmoid(x) = relu6(x + 3)/6, hardswish(x) = x·hardsigmoid(x).
    const hardSigmoid = (x: tf.Tensor) => tf.div(tf.relu6(tf.add(x, 3)), 6);
    const unary = (name: string, op: string, fn: (x: tf.Tensor) => tf.Tensor, attributes?: Record<string, Attribute>, xs = values): OpCase => ({ name, shape, values: xs, onnx: (b, x) => b.op(op, [x], 'y', shape, attributes), tfjs: fn });
    await checkOp(unary('HardSigmoid α = 1/6, β = ½', 'HardSigmoid', hardSigmoid, { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }));
    await checkOp(unary('HardSigmoid with ONNX’s defaults', 'HardSigmoid', (x) => tf.clipByValue(tf.add(tf.mul(x, 0.2), 0.5), 0, 1)));
    await checkOp(unary('HardSwish', 'HardSwish', (x) => tf.mul(x, hardSigmoid(x))));
    await checkOp(unary('Erf', 'Erf', tf.erf, undefined, uniform(size(shape), 132, -2.5, 2.5)));
  });

  it('LayerNormalization over the last axis and the last two, with scale and bias; scale and bias computed from the input', async () => {
    for (const [shape, axis] of [[[2, 3, 6], -1], [[2, 3, 4, 5], 2]] as const) {
      const first = axis < 0 ? axis + shape.length : axis;
      const normalized = shape.slice(first);
      const axes = normalized.map((_, i) => first + i);
      const scale = uniform(size(normalized), 141, 0.5, 1.5);
      const bias = uniform(size(normalized), 142);
      await checkOp({
        name: `layer norm over axes ${axes.join(', ')}`,
        shape: [...shape],
        values: uniform(size(shape), 143, -1, 3),
        onnx: (b, x) => b.op('LayerNormalization', [x, b.float32('scale', scale, normalized), b.float32('bias', bias, normalized)], 'y', shape, { axis: { int: axis }, epsilon: { float: 1e-5 } }),
        tfjs: (x) => {
          const { mean, variance } = tf.moments(x, axes, true);
          return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), tf.tensor(scale, normalized)), tf.tensor(bias, normalized));
        },
      });
    }
    // Scale and bias as graph values: their gradients flow back into x too (through ReduceMean and ReduceSum with keepdims 0).
    const shape = [2, 3, 6];
    await checkOp({
      name: 'layer norm with computed scale and bias',
      shape,
      onnx: (b, x) => {
        const scale = b.op('ReduceMean', [x], 'scale', [6], { axes: { ints: [0, 1] }, keepdims: { int: 0 } });
        const bias = b.op('ReduceSum', [b.op('Tanh', [x], 't', shape), b.int64('axes', [0, 1])], 'bias', [6], { keepdims: { int: 0 } });
        return b.op('LayerNormalization', [x, scale, bias], 'y', shape, { epsilon: { float: 1e-3 } });
      },
      tfjs: (x) => {
        const { mean, variance } = tf.moments(x, [2], true);
        return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-3))), tf.mean(x, [0, 1])), tf.sum(tf.tanh(x), [0, 1]));
      },
    });
  });

  it('ReduceMean (axes attribute) and ReduceSum (axes input), keepdims 0 and 1, all axes, no-op', async () => {
    const shape = [2, 3, 4, 5];
    const reduce = (op: 'ReduceMean' | 'ReduceSum', axes: number[] | undefined, keepdims: number, out: number[], fn: (x: tf.Tensor) => tf.Tensor, extra: Record<string, Attribute> = {}): OpCase => ({
      name: `${op} axes ${axes?.join(', ') ?? 'none'} keepdims ${keepdims}${'noop_with_empty_axes' in extra ? ' no-op' : ''}`,
      shape,
      onnx: (b, x) => op === 'ReduceMean'
        ? b.op(op, [x], 'y', out, { ...(axes ? { axes: { ints: axes } } : {}), keepdims: { int: keepdims }, ...extra })
        : b.op(op, axes ? [x, b.int64('axes', axes)] : [x], 'y', out, { keepdims: { int: keepdims }, ...extra }),
      tfjs: fn,
    });
    await checkOp(reduce('ReduceMean', [1, -1], 1, [2, 1, 4, 1], (x) => tf.mean(x, [1, 3], true)));
    await checkOp(reduce('ReduceMean', [2], 0, [2, 3, 5], (x) => tf.mean(x, 2)));
    await checkOp(reduce('ReduceMean', undefined, 1, [1, 1, 1, 1], (x) => tf.mean(x, [0, 1, 2, 3], true)));
    await checkOp(reduce('ReduceSum', [0, 2], 0, [3, 5], (x) => tf.sum(x, [0, 2])));
    await checkOp(reduce('ReduceSum', [-1], 1, [2, 3, 4, 1], (x) => tf.sum(x, 3, true)));
    await checkOp(reduce('ReduceSum', [], 1, shape, (x) => tf.mul(x, 1), { noop_with_empty_axes: { int: 1 } }));
  });

  it('Slice: negative and clamped starts and ends, default axes, steps 2, −1, −2 and 4', async () => {
    const shape = [2, 3, 5, 6];
    const int64Max = (b: GraphBuilder, name: string) => b.constant(name, { dtype: 'int64', dims: [1], data: BigInt64Array.of(9223372036854775807n) });
    const slice = (name: string, spec: { starts: number[]; ends: (b: GraphBuilder) => string; axes?: number[]; steps?: number[] }, out: number[], fn: (x: tf.Tensor) => tf.Tensor): OpCase => ({
      name,
      shape,
      onnx: (b, x) => {
        const inputs = [x, b.int64('starts', spec.starts), spec.ends(b)];
        if (spec.axes) inputs.push(b.int64('axes', spec.axes));
        if (spec.steps) inputs.push(b.int64('steps', spec.steps));
        return b.op('Slice', inputs, 'y', out);
      },
      tfjs: fn,
    });
    const gather = (x: tf.Tensor, indices: number[], axis: number) => tf.gather(x, tf.tensor1d(indices, 'int32'), axis);
    await checkOp(slice('slice from the end, end clamped', { starts: [-4, 1], ends: (b) => b.int64('ends', [1000, -1]), axes: [3, -2] }, [2, 3, 3, 4], (x) => tf.slice(x, [0, 0, 1, 2], [2, 3, 3, 4])));
    await checkOp(slice('slice to INT64_MAX, start clamped', { starts: [-100], ends: (b) => int64Max(b, 'ends'), axes: [1] }, shape, (x) => tf.mul(x, 1)));
    await checkOp(slice('slice with default axes', { starts: [0, 1], ends: (b) => b.int64('ends', [1, 3]) }, [1, 2, 5, 6], (x) => tf.slice(x, [0, 1, 0, 0], [1, 2, 5, 6])));
    await checkOp(slice('slice steps 2 and −2', { starts: [1, -1], ends: (b) => b.int64('ends', [5, -100]), axes: [2, 3], steps: [2, -2] }, [2, 3, 2, 3], (x) => gather(gather(x, [1, 3], 2), [5, 3, 1], 3)));
    await checkOp(slice('slice reversed, and step 4', { starts: [-1, 0], ends: (b) => b.int64('ends', [-1000, 6]), axes: [1, 3], steps: [-1, 4] }, [2, 3, 5, 2], (x) => gather(gather(x, [2, 1, 0], 1), [0, 4], 3)));
  });

  it('Split: some outputs reach the score (the first not always), split sizes and equal parts', async () => {
    const shape = [2, 6, 3];
    const split = (b: GraphBuilder, x: string) => b.node('Split', [x, b.int64('split', [1, 2, 3])], [{ name: 'a', shape: [2, 1, 3] }, { name: 'b', shape: [2, 2, 3] }, { name: 'c', shape: [2, 3, 3] }], { axis: { int: 1 } });
    const parts = (x: tf.Tensor) => tf.split(x, [1, 2, 3], 1);
    await checkOp({
      name: 'split: first and last parts',
      shape,
      onnx: (b, x) => {
        const [a, , c] = split(b, x);
        return b.op('Concat', [b.op('Tanh', [c], 't', [2, 3, 3]), a], 'y', [2, 4, 3], { axis: { int: 1 } });
      },
      tfjs: (x) => {
        const [a, , c] = parts(x);
        return tf.concat([tf.tanh(c), a], 1);
      },
    });
    await checkOp({ name: 'split: the middle part alone', shape, onnx: (b, x) => b.op('Sigmoid', [split(b, x)[1]], 'y', [2, 2, 3]), tfjs: (x) => tf.sigmoid(parts(x)[1]) });
    await checkOp({
      name: 'split: equal parts on the last axis, the last two',
      shape: [2, 4, 6],
      onnx: (b, x) => {
        const [, q, r] = b.node('Split', [x], [0, 1, 2].map((i) => ({ name: `p${i}`, shape: [2, 4, 2] })), { axis: { int: -1 } });
        return b.op('Add', [q, b.op('Mul', [r, r], 'rr', [2, 4, 2])], 'y', [2, 4, 2]);
      },
      tfjs: (x) => {
        const [, q, r] = tf.split(x, 3, -1);
        return tf.add(q, tf.mul(r, r));
      },
    });
  });

  it('Gather: repeated and negative indices (2-D), a scalar index, an ascending run, axis 0', async () => {
    const shape = [2, 5, 3];
    const gather = (name: string, indices: number[], dims: number[], axis: number, out: number[], tfIndices: number[]): OpCase => ({
      name,
      shape,
      onnx: (b, x) => b.op('Gather', [x, b.constant('indices', int64Tensor(indices, dims))], 'y', out, { axis: { int: axis } }),
      tfjs: (x) => tf.gather(x, tf.tensor(tfIndices, dims, 'int32'), axis),
    });
    await checkOp(gather('gather repeated, negative', [4, -1, 0, 4], [2, 2], 1, [2, 2, 2, 3], [4, 4, 0, 4]));
    await checkOp(gather('gather a scalar index', [-2], [], 2, [2, 5], [1]));
    await checkOp(gather('gather an ascending run', [1, 2, 3], [3], -2, [2, 3, 3], [1, 2, 3]));
    await checkOp(gather('gather on axis 0', [1, 1, 0], [3], 0, [3, 5, 3], [1, 1, 0]));
  });

  it('Neg, Sqrt, Exp, Pow (exponents 3, 2, 0.5, −1), Expand; Cast and Dropout pass the gradient, an integer Cast path gets none', async () => {
    const shape = [2, 3, 4];
    const positive = uniform(size(shape), 151, 0.2, 2);
    const unary = (name: string, build: (b: GraphBuilder, x: string) => string, fn: (x: tf.Tensor) => tf.Tensor, values?: Float32Array): OpCase => ({ name, shape, values, onnx: build, tfjs: fn });
    // Neg(Dropout(Cast(x))) times x's last size, read through Shape, Gather and Cast to float (the size gets no gradient).
    await checkOp(unary('neg, cast, dropout, times a size', (b, x) => {
      const cast = b.op('Cast', [x], 'cast', shape, { to: { int: 1 } });
      const negated = b.op('Neg', [b.op('Dropout', [cast], 'dropout', shape)], 'neg', shape);
      const dims = b.op('Shape', [x], 'dims', [3], undefined, 'int64');
      const last = b.op('Gather', [dims, b.constant('two', int64Tensor([2], []))], 'last', [], { axis: { int: 0 } }, 'int64');
      return b.op('Mul', [negated, b.op('Cast', [last], 'lastFloat', [], { to: { int: 1 } })], 'y', shape);
    }, (x) => tf.mul(tf.neg(x), 4)));
    await checkOp(unary('sqrt', (b, x) => b.op('Sqrt', [x], 'y', shape), tf.sqrt, positive));
    await checkOp(unary('exp', (b, x) => b.op('Exp', [x], 'y', shape), tf.exp));
    for (const p of [3, 2, 0.5, -1]) {
      await checkOp(unary(`pow ${p}`, (b, x) => b.op('Pow', [x, b.float32('p', [p], [])], 'y', shape), (x) => tf.pow(x, p), p === 3 || p === 2 ? undefined : positive));
    }
    await checkOp({ name: 'expand', shape: [2, 1, 4], onnx: (b, x) => b.op('Expand', [x, b.int64('shape', [3, 2, 5, 4])], 'y', [3, 2, 5, 4]), tfjs: (x) => tf.add(x, tf.zeros([3, 2, 5, 4])) });
  });

  it('InstanceNormalization: per-channel scale and bias, GroupNorm’s export (Reshape → InstanceNormalization with ones → Reshape → Mul → Add), scale and bias computed from the input', async () => {
    const shape = [2, 3, 4, 5];
    const normalize = (x: tf.Tensor, axes: number[], epsilon: number) => {
      const { mean, variance } = tf.moments(x, axes, true);
      return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon)));
    };
    const scale = uniform(3, 161, 0.5, 1.5);
    const bias = uniform(3, 162);
    await checkOp({
      name: 'instance norm',
      shape,
      values: uniform(size(shape), 163, -1, 3),
      onnx: (b, x) => b.op('InstanceNormalization', [x, b.float32('scale', scale, [3]), b.float32('bias', bias, [3])], 'y', shape, { epsilon: { float: 1e-5 } }),
      tfjs: (x) => tf.add(tf.mul(normalize(x, [2, 3], 1e-5), tf.tensor(scale, [3, 1, 1])), tf.tensor(bias, [3, 1, 1])),
    });
    const gnShape = [2, 4, 3, 3];
    const gamma = uniform(4, 164, 0.5, 1.5);
    const beta = uniform(4, 165);
    await checkOp({
      name: 'group norm as PyTorch exports it (2 groups)',
      shape: gnShape,
      onnx: (b, x) => {
        const grouped = b.op('Reshape', [x, b.int64('groups', [2, 2, -1])], 'grouped', [2, 2, 18]);
        const normed = b.op('InstanceNormalization', [grouped, b.float32('ones', [1, 1], [2]), b.float32('zeros', [0, 0], [2])], 'normed', [2, 2, 18], { epsilon: { float: 1e-5 } });
        const back = b.op('Reshape', [normed, b.int64('shape', gnShape)], 'back', gnShape);
        return b.op('Add', [b.op('Mul', [back, b.float32('gamma', gamma, [4, 1, 1])], 'scaled', gnShape), b.float32('beta', beta, [4, 1, 1])], 'y', gnShape);
      },
      tfjs: (x) => tf.add(tf.mul(tf.reshape(normalize(tf.reshape(x, [2, 2, 18]), [2], 1e-5), gnShape), tf.tensor(gamma, [4, 1, 1])), tf.tensor(beta, [4, 1, 1])),
    });
    await checkOp({
      name: 'instance norm with computed scale and bias',
      shape,
      values: uniform(size(shape), 166, -1, 3),
      onnx: (b, x) => {
        const computedScale = b.op('ReduceMean', [x], 'scale', [3], { axes: { ints: [0, 2, 3] }, keepdims: { int: 0 } });
        const computedBias = b.op('ReduceSum', [b.op('Tanh', [x], 't', shape), b.int64('axes', [0, 2, 3])], 'bias', [3], { keepdims: { int: 0 } });
        return b.op('InstanceNormalization', [x, computedScale, computedBias], 'y', shape, { epsilon: { float: 1e-3 } });
      },
      tfjs: (x) => tf.add(tf.mul(normalize(x, [2, 3], 1e-3), tf.reshape(tf.mean(x, [0, 2, 3]), [3, 1, 1])), tf.reshape(tf.sum(tf.tanh(x), [0, 2, 3]), [3, 1, 1])),
    });
  });

  it('ReduceMax, ReduceMin, GlobalMaxPool: dy to the first extreme (ties included), adjacent and split axes, keepdims 0 and 1', async () => {
    const shape = [2, 4, 3, 3];
    /** The first maximum (minimum) over `axes`, row-major, as x·oneHot(argMax) summed: tf.grad sends dy to that cell alone. */
    const firstExtreme = (x: tf.Tensor, axes: number[], out: number[], max: boolean) => {
      const keptAxes = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
      const arranged = tf.transpose(x, [...keptAxes, ...axes]);
      const count = size(axes.map((axis) => x.shape[axis]));
      const flat = tf.reshape(arranged, [...keptAxes.map((axis) => x.shape[axis]), count]);
      const index = max ? tf.argMax(flat, -1) : tf.argMin(flat, -1);
      return tf.reshape(tf.sum(tf.mul(flat, tf.oneHot(index, count).toFloat()), -1), out);
    };
    const reduce = (op: 'ReduceMax' | 'ReduceMin', axes: number[] | undefined, keepdims: number, out: number[], values?: Float32Array): OpCase => ({
      name: `${op} axes ${axes?.join(', ') ?? 'all'} keepdims ${keepdims}${values ? ', ties' : ''}`,
      shape,
      values,
      onnx: (b, x) => b.op(op, [x], 'y', out, { ...(axes ? { axes: { ints: axes } } : {}), keepdims: { int: keepdims } }),
      tfjs: (x) => firstExtreme(x, (axes ?? [0, 1, 2, 3]).map((axis) => (axis + 4) % 4), out, op === 'ReduceMax'),
    });
    const ties = tied(size(shape), 171);
    await checkOp(reduce('ReduceMax', [1], 1, [2, 1, 3, 3], ties));
    await checkOp(reduce('ReduceMin', [2, -1], 0, [2, 4], ties));
    await checkOp(reduce('ReduceMax', [1, 3], 0, [2, 3], ties));
    await checkOp(reduce('ReduceMin', undefined, 1, [1, 1, 1, 1]));
    await checkOp({ name: 'ReduceMax without ties, against tf.max', shape, onnx: (b, x) => b.op('ReduceMax', [x], 'y', [2, 3], { axes: { ints: [1, 3] }, keepdims: { int: 0 } }), tfjs: (x) => tf.max(x, [1, 3]) });
    await checkOp({ name: 'global max pool, ties', shape, values: ties, onnx: (b, x) => b.op('GlobalMaxPool', [x], 'y', [2, 4, 1, 1]), tfjs: (x) => firstExtreme(x, [2, 3], [2, 4, 1, 1], true) });
  });

  it('Max, Min: broadcasting, three operands, ties split evenly', async () => {
    const shape = [2, 3, 4];
    // max(a, b) = (a + b + |a − b|)/2 with |d| as d·sign(d), whose slope is 0 at 0: each tied operand gets half, as in PyTorch.
    const evenMax = (a: tf.Tensor, b: tf.Tensor) => tf.div(tf.add(tf.add(a, b), absZeroSlope(tf.sub(a, b))), 2);
    const evenMin = (a: tf.Tensor, b: tf.Tensor) => tf.div(tf.sub(tf.add(a, b), absZeroSlope(tf.sub(a, b))), 2);
    for (const [op, even] of [['Max', evenMax], ['Min', evenMin]] as const) {
      await checkOp({
        name: `${op}(x, relu(x)), tied wherever x ≥ 0`,
        shape,
        values: tied(size(shape), 181),
        onnx: (b, x) => b.op(op, [x, b.op('Relu', [x], 'r', shape)], 'y', shape),
        tfjs: (x) => even(x, tf.relu(x)),
        layers: [{ onnx: 'r', tfjs: (x) => tf.relu(x), rest: (x, r) => even(x, r) }],
      });
    }
    const fixed = uniform(4, 182);
    for (const [op, fn] of [['Max', tf.maximum], ['Min', tf.minimum]] as const) {
      await checkOp({
        name: `${op} of three broadcast operands`,
        shape,
        onnx: (b, x) => b.op(op, [b.op('Tanh', [x], 't', shape), b.op('ReduceMean', [x], 'm', [2, 3, 1], { axes: { ints: [2] }, keepdims: { int: 1 } }), b.float32('c', fixed, [4])], 'y', shape),
        // (tfjs's maximum and minimum do not sum a broadcast operand's gradient back: both broadcast first.)
        tfjs: (x) => fn(fn(tf.tanh(x), tf.broadcastTo(tf.mean(x, 2, true), shape)), tf.broadcastTo(tf.tensor(fixed, [4]), shape)),
      });
    }
  });

  it('PRelu (constant and computed slope), Selu, Celu, Softsign, Abs, Log, Reciprocal, Mean, Where, Tile, LogSoftmax', async () => {
    const shape = [2, 3, 4, 5];
    const values = uniform(size(shape), 191, -3, 3);
    for (const i of [0, 13, 57]) values[i] = 0;
    const positive = uniform(size(shape), 192, 0.3, 2);
    const unary = (name: string, op: string, fn: (x: tf.Tensor) => tf.Tensor, xs: Float32Array, attributes?: Record<string, Attribute>): OpCase => ({ name, shape, values: xs, onnx: (b, x) => b.op(op, [x], 'y', shape, attributes), tfjs: fn });
    const slope = uniform(3, 193, 0.05, 0.5);
    // tfjs's prelu passes α·dy at x = 0, as PyTorch's does.
    const prelu = (x: tf.Tensor, a: tf.Tensor) => tf.prelu(x, a);
    await checkOp({ name: 'PRelu, slope [C, 1, 1]', shape, values, onnx: (b, x) => b.op('PRelu', [x, b.float32('slope', slope, [3, 1, 1])], 'y', shape), tfjs: (x) => prelu(x, tf.tensor(slope, [3, 1, 1])) });
    await checkOp({
      name: 'PRelu, slope computed from x',
      shape,
      values,
      onnx: (b, x) => b.op('PRelu', [x, b.op('Sigmoid', [b.op('ReduceMean', [x], 'm', [1, 3, 1, 1], { axes: { ints: [0, 2, 3] }, keepdims: { int: 1 } })], 's', [1, 3, 1, 1])], 'y', shape),
      tfjs: (x) => prelu(x, tf.sigmoid(tf.mean(x, [0, 2, 3], true))),
    });
    await checkOp(unary('Selu', 'Selu', tf.selu, values));
    await checkOp(unary('Celu α = 0.7', 'Celu', (x) => tf.mul(tf.elu(tf.div(x, 0.7)), 0.7), values, { alpha: { float: 0.7 } }));
    await checkOp(unary('Softsign', 'Softsign', (x) => tf.div(x, tf.add(tf.abs(x), 1)), uniform(size(shape), 194, -3, 3)));
    await checkOp(unary('Abs, 0 at 0', 'Abs', absZeroSlope, values));
    await checkOp(unary('Log', 'Log', tf.log, positive));
    await checkOp(unary('Reciprocal', 'Reciprocal', tf.reciprocal, positive));
    const fixed = uniform(5, 195);
    await checkOp({
      name: 'Mean of four, broadcast, one constant',
      shape,
      onnx: (b, x) => b.op('Mean', [x, b.op('Tanh', [x], 't', shape), b.float32('c', fixed, [5]), b.op('ReduceSum', [x, b.int64('axes', [1])], 's', [2, 1, 4, 5], { keepdims: { int: 1 } })], 'y', shape),
      tfjs: (x) => tf.div(tf.addN([x, tf.tanh(x), tf.broadcastTo(tf.tensor(fixed, [5]), shape), tf.broadcastTo(tf.sum(x, 1, true), shape)]), 4),
    });
    await checkOp({
      name: 'Where, branches broadcast, condition computed',
      shape,
      onnx: (b, x) => {
        const condition = b.op('Greater', [x, b.float32('zero', [0], [])], 'c', shape, undefined, 'bool');
        return b.op('Where', [condition, b.op('Mul', [x, x], 'sq', shape), b.op('ReduceMean', [x], 'm', [2, 3, 1, 5], { axes: { ints: [2] }, keepdims: { int: 1 } })], 'y', shape);
      },
      // The condition from x's values, off the tape (tfjs has no gradient for Greater, and Where asks for one).
      tfjs: (x) => tf.where(tf.tensor(Array.from(x.dataSync(), (v) => (v > 0 ? 1 : 0)), shape, 'bool'), tf.mul(x, x), tf.broadcastTo(tf.mean(x, 2, true), shape)),
    });
    await checkOp({ name: 'Tile', shape: [2, 3, 4], onnx: (b, x) => b.op('Tile', [x, b.int64('repeats', [1, 2, 3])], 'y', [2, 6, 12]), tfjs: (x) => tf.tile(x, [1, 2, 3]) });
    await checkOp({ name: 'LogSoftmax', shape: [3, 6], onnx: (b, x) => b.op('LogSoftmax', [x], 'y', [3, 6], { axis: { int: 1 } }), tfjs: (x) => tf.logSoftmax(x) });
    await checkOp({ name: 'LogSoftmax on the middle axis', shape: [2, 4, 3], onnx: (b, x) => b.op('LogSoftmax', [x], 'y', [2, 4, 3], { axis: { int: -2 } }), tfjs: (x) => tf.transpose(tf.logSoftmax(tf.transpose(x, [0, 2, 1])), [0, 2, 1]) });
  });

  it('ConvTranspose: strides, pads, output_padding, dilation, groups, bias; weights as a value; a weight gradient refused', async () => {
    interface TransposeSpec { inputs: number; outputs: number; kernel: [number, number]; strides?: [number, number]; dilations?: [number, number]; pads?: [number, number, number, number]; outputPadding?: [number, number]; group?: number }
    const transposeCase = (name: string, shape: [number, number, number, number], spec: TransposeSpec, seed: number, bias: boolean, weightsAsValue = false): OpCase => {
      const group = spec.group ?? 1;
      const [sh, sw] = spec.strides ?? [1, 1];
      const [dh, dw] = spec.dilations ?? [1, 1];
      const [top, left, bottom, right] = spec.pads ?? [0, 0, 0, 0];
      const [oph, opw] = spec.outputPadding ?? [0, 0];
      const [n, , h, w] = shape;
      const full = [(h - 1) * sh + (spec.kernel[0] - 1) * dh + 1, (w - 1) * sw + (spec.kernel[1] - 1) * dw + 1];
      const out = [n, spec.outputs, full[0] + oph - top - bottom, full[1] + opw - left - right];
      const wShape = [spec.inputs, spec.outputs / group, ...spec.kernel];
      const weights = uniform(size(wShape), seed);
      const biasValues = uniform(spec.outputs, seed + 1);
      return {
        name,
        shape,
        onnx: (b, x) => {
          const constant = b.float32('w', weights, wShape);
          const inputs = [x, weightsAsValue ? b.op('Identity', [constant], 'wValue', wShape) : constant];
          if (bias) inputs.push(b.float32('bias', biasValues, [spec.outputs]));
          return b.op('ConvTranspose', inputs, 'y', out, attrs({ kernel_shape: spec.kernel, strides: [sh, sw], dilations: [dh, dw], pads: [top, left, bottom, right], output_padding: [oph, opw], group }));
        },
        tfjs: (x) => {
          // Each group's transposed convolution without pads (the dilation spread into the kernel), then output_padding's zeros added and the pads cropped.
          const kernel = dilatedKernel(tf.tensor4d(weights, wShape as [number, number, number, number]), [dh, dw]);
          const inPer = spec.inputs / group;
          const outPer = spec.outputs / group;
          const xs = toNhwc(x) as tf.Tensor4D;
          const parts = Array.from({ length: group }, (_, g) => {
            const filter = tf.transpose(tf.slice(kernel, [g * inPer, 0, 0, 0], [inPer, -1, -1, -1]), [2, 3, 1, 0]) as tf.Tensor4D;
            return tf.conv2dTranspose(tf.slice(xs, [0, 0, 0, g * inPer], [-1, -1, -1, inPer]) as tf.Tensor4D, filter, [n, full[0], full[1], outPer], [sh, sw], 'valid');
          });
          let y: tf.Tensor = parts.length === 1 ? parts[0] : tf.concat(parts, 3);
          y = tf.slice(tf.pad(y, [[0, 0], [0, oph], [0, opw], [0, 0]]), [0, top, left, 0], [-1, out[2], out[3], -1]);
          if (bias) y = tf.add(y, biasValues);
          return toNchw(y);
        },
      };
    };
    await checkOp(transposeCase('conv transpose 3×3 stride 2 pads 1 output_padding 1, bias', [2, 3, 4, 5], { inputs: 3, outputs: 4, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1] }, 201, true));
    await checkOp(transposeCase('conv transpose groups 2, dilation 2, pads 0,1,1,0', [2, 4, 4, 4], { inputs: 4, outputs: 6, kernel: [3, 2], dilations: [2, 2], pads: [0, 1, 1, 0], group: 2 }, 202, false));
    await checkOp(transposeCase('conv transpose 2×2 stride 2 (upsampling), weights a graph value', [2, 3, 3, 4], { inputs: 3, outputs: 2, kernel: [2, 2], strides: [2, 2] }, 203, true, true));
    const b = new GraphBuilder('convTransposeWeights');
    const x = b.addInput('x', [2, 3, 3, 3]);
    const kernel = b.op('Mul', [b.float32('w', uniform(3 * 2 * 2 * 2, 204), [3, 2, 2, 2]), b.op('ReduceMean', [x], 'm', [], { keepdims: { int: 0 } })], 'kernel', [3, 2, 2, 2]);
    const y = b.op('ConvTranspose', [x, kernel], 'y', [2, 2, 4, 4], attrs({ kernel_shape: [2, 2] }));
    const score = b.op('Flatten', [y], 'score', [2, 32], { axis: { int: 1 } });
    b.addOutput(score);
    assert.throws(() => buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: 'plain' }), /ConvTranspose ConvTranspose_y: its weights get no gradient/);
  });

  it('DepthToSpace (DCR and CRD) and SpaceToDepth', async () => {
    const depthToSpace = (x: tf.Tensor, bs: number, mode: 'DCR' | 'CRD') => {
      const [n, c, h, w] = x.shape;
      const channels = c / (bs * bs);
      return mode === 'DCR'
        ? tf.reshape(tf.transpose(tf.reshape(x, [n, bs, bs, channels, h, w]), [0, 3, 4, 1, 5, 2]), [n, channels, h * bs, w * bs])
        : tf.reshape(tf.transpose(tf.reshape(x, [n, channels, bs, bs, h, w]), [0, 1, 4, 2, 5, 3]), [n, channels, h * bs, w * bs]);
    };
    for (const mode of ['DCR', 'CRD'] as const) {
      await checkOp({
        name: `DepthToSpace ${mode}`,
        shape: [2, 8, 2, 3],
        onnx: (b, x) => b.op('Tanh', [b.op('DepthToSpace', [x], 'd', [2, 2, 4, 6], { blocksize: { int: 2 }, mode: { string: mode } })], 'y', [2, 2, 4, 6]),
        tfjs: (x) => tf.tanh(depthToSpace(x, 2, mode)),
      });
    }
    await checkOp({
      name: 'SpaceToDepth',
      shape: [2, 2, 4, 6],
      onnx: (b, x) => b.op('Tanh', [b.op('SpaceToDepth', [x], 'd', [2, 8, 2, 3], { blocksize: { int: 2 } })], 'y', [2, 8, 2, 3]),
      tfjs: (x) => tf.tanh(tf.reshape(tf.transpose(tf.reshape(x, [2, 2, 2, 2, 3, 2]), [0, 3, 5, 1, 2, 4]), [2, 8, 2, 3])),
    });
  });

  it('Resize nearest by whole factors (PyTorch’s Upsample: asymmetric, floor; half_pixel by sizes); other modes refused', async () => {
    const shape = [2, 3, 3, 4];
    // Each cell repeated f times along an axis: gathered at ⌊o/f⌋.
    const repeat = (x: tf.Tensor, axis: number, f: number) => tf.gather(x, tf.tensor1d(Array.from({ length: x.shape[axis] * f }, (_, o) => Math.floor(o / f)), 'int32'), axis);
    const upsample = (x: tf.Tensor, [fh, fw]: [number, number]) => repeat(repeat(x, 2, fh), 3, fw);
    await checkOp({
      name: 'Resize ×2, asymmetric floor (scales)',
      shape,
      onnx: (b, x) => b.op('Resize', [x, '', b.float32('scales', [1, 1, 2, 2], [4])], 'y', [2, 3, 6, 8], { mode: { string: 'nearest' }, coordinate_transformation_mode: { string: 'asymmetric' }, nearest_mode: { string: 'floor' } }),
      tfjs: (x) => upsample(x, [2, 2]),
    });
    await checkOp({
      name: 'Resize ×3 on one axis, half_pixel round_prefer_floor (sizes)',
      shape,
      onnx: (b, x) => b.op('Resize', [x, '', '', b.int64('sizes', [2, 3, 9, 4])], 'y', [2, 3, 9, 4], { mode: { string: 'nearest' } }),
      tfjs: (x) => upsample(x, [3, 1]),
    });
    const b = new GraphBuilder('resizeLinear');
    const x = b.addInput('x', shape);
    const y = b.op('Resize', [x, '', b.float32('scales', [1, 1, 2, 2], [4])], 'y', [2, 3, 6, 8], { mode: { string: 'linear' } });
    const score = b.op('Flatten', [y], 'score', [2, 144], { axis: { int: 1 } });
    b.addOutput(score);
    assert.throws(
      () => buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: 'plain' }),
      (error: Error) => isUserError(error) && /cannot differentiate Resize in mode linear .*\(node Resize_y\), so gradient-based explainers cannot run on this model/.test(error.message),
    );
  });

  it('an op without a backward rule: undifferentiableOps lists it (not ops on shapes or constants), the gradient graph refuses it in one sentence', () => {
    const b = new GraphBuilder('unsupported');
    const x = b.addInput('x', [2, 3]);
    const r = b.op('Relu', [x], 'r', [2, 3]);
    const top = b.op('ReduceProd', [r], 'top', [2, 1], { axes: { ints: [1] }, keepdims: { int: 1 } }, undefined);
    const offset = b.op('Cos', [b.float32('angle', [0.5], [])], 'offset', []);
    const dims = b.op('Shape', [x], 'dims', [2], undefined, 'int64');
    const width = b.op('Cast', [b.op('Gather', [dims, b.constant('one', int64Tensor([1], []))], 'width', [], { axis: { int: 0 } }, 'int64')], 'widthFloat', [], { to: { int: 1 } });
    const shifted = b.op('Add', [b.op('Mul', [b.op('Sub', [r, top], 'centred', [2, 3]), width], 'scaled', [2, 3]), offset], 'shifted', [2, 3]);
    const score = b.op('Cos', [shifted], 'score', [2, 3]);
    b.addOutput(score);
    assert.deepEqual(undifferentiableOps(b.build()), [{ op: 'ReduceProd', node: 'ReduceProd_top' }, { op: 'Cos', node: 'Cos_score' }]);
    assert.throws(
      () => buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: 'plain' }),
      (error: Error) => isUserError(error) && /cannot differentiate Cos \(node Cos_score\), so gradient-based explainers cannot run/.test(error.message) && !/tfjs/.test(error.message),
    );
  });

  it('a zero Pad before a convolution costs no copy backward; batch norm goes into the convolution weights', () => {
    const b = new GraphBuilder('folds');
    const x = b.addInput('x', [2, 3, 6, 6]);
    const padded = b.op('Pad', [x, b.int64('pads', [0, 0, 1, 1, 0, 0, 1, 1])], 'p', [2, 3, 8, 8], { mode: { string: 'constant' } });
    const conv = convCase('dw', [2, 3, 8, 8], { inputs: 3, outputs: 3, kernel: [3, 3], group: 3 }, 82).onnx(b, padded);
    const ones = b.float32('ones', [1, 1, 1], [3]);
    const normed = b.op('BatchNormalization', [conv, ones, b.float32('zeros', [0, 0, 0], [3]), b.float32('mean', [0, 0, 0], [3]), b.float32('var', [3, 2, 1], [3])], 'bn', [2, 3, 6, 6]);
    const score = b.op('Flatten', [b.op('GlobalAveragePool', [normed], 'g', [2, 3, 1, 1])], 'score', [2, 3], { axis: { int: 1 } });
    b.addOutput(score);
    const built = buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: 'plain' });
    // A linear network: the forward is not needed at all.
    const ops = built.graph.nodes.map((node) => node.op);
    const count = (op: string) => ops.filter((o) => o === op).length;
    assert.ok(count('Slice') === 0 && count('Pad') === 0 && count('BatchNormalization') === 0, `no slice, pad or batch norm: ${ops.join(' ')}`);
    assert.ok(count('Conv') === 1 && count('Mul') === 1, `one convolution, one Mul (the pool's 1/(h·w)): ${ops.join(' ')}`);
  });

  it('only nodes between the values asked for and the score are differentiated', () => {
    const b = new GraphBuilder('pruned');
    const x = b.addInput('x', [2, 3, 6, 6]);
    const c1 = convCase('c1', [2, 3, 6, 6], { inputs: 3, outputs: 3, kernel: [3, 3], pads: [1, 1, 1, 1] }, 81).onnx(b, x);
    const r = b.op('Relu', [c1], 'r', [2, 3, 6, 6]);
    const pooled = b.op('GlobalAveragePool', [r], 'g', [2, 3, 1, 1]);
    const score = b.op('Flatten', [pooled], 'score', [2, 3], { axis: { int: 1 } });
    const softmax = b.op('Softmax', [score], 'p', [2, 3], { axis: { int: 1 } });
    b.addOutput(softmax);
    const built = buildGradientGraph(b.build(), { input: x, score, layers: [r], inputGradient: false, rule: 'plain' });
    const ops = built.graph.nodes.map((node) => node.op);
    assert.ok(!ops.includes('ConvTranspose') && ops.filter((op) => op === 'Conv').length === 1, `no convolution backward upstream of r: ${ops.join(' ')}`);
    assert.ok(!ops.includes('Softmax'), 'the softmax after the score is left out');
    assert.ok(!ops.includes('Where'), 'the Relu producing r is not differentiated');
    assert.deepEqual(built.graph.outputs.map((o) => o.name), [...built.activations, ...built.gradients]);
    assert.throws(() => buildGradientGraph(b.build(), { input: x, score, layers: [softmax], inputGradient: false, rule: 'plain' }), isUserError);
  });
});

// ------------------------------------------------------------------ whole models

/** One-hot rows for the targets. */
function oneHot(targets: readonly number[], classes: number): Float32Array {
  const mask = new Float32Array(targets.length * classes);
  targets.forEach((t, i) => (mask[i * classes + t] = 1));
  return mask;
}

interface ModelGradients {
  readonly layers: { activations: HostTensor; gradients: HostTensor }[];
  readonly input?: HostTensor;
}

/** The exported model's gradient graph, run: layers by tfjs layer name, NHWC out. */
async function onnxGradients(model: tf.LayersModel, x: tf.Tensor4D, targets: readonly number[], layers: readonly string[], inputGradient: boolean, rule: GradientRule): Promise<ModelGradients> {
  const exported = exportLayersModel(model, { batch: x.shape[0], leaveOutSoftmax: true });
  const values = layers.map((layer) => exported.layerValues.get(layer) as string);
  const built = buildGradientGraph(exported.graph, { input: exported.input, score: exported.output, layers: values, inputGradient, rule, layouts: exported.layouts });
  const classes = exported.graph.values.get(exported.output)?.shape[1] as number;
  const outputs = await run(
    built.graph,
    { [exported.input]: host(x), [built.targets]: { data: oneHot(targets, classes), shape: [x.shape[0], classes] } },
    [...built.activations, ...built.gradients, ...(built.input ? [built.input] : [])],
  );
  return { layers: layers.map((_, i) => ({ activations: outputs[i], gradients: outputs[layers.length + i] })), input: built.input ? outputs[2 * layers.length] : undefined };
}

async function assertLayerGradients(model: tf.LayersModel, x: tf.Tensor4D, targets: number[], layers: string[]): Promise<void> {
  const onnx = await onnxGradients(model, x, targets, layers, true, 'plain');
  const reference = layerGradients(model, x, layers, targets, { inputGradient: true });
  layers.forEach((layer, i) => {
    assertClose(onnx.layers[i].activations, host(reference.layers[i].activations), `${model.name} activations at ${layer}`);
    assertClose(onnx.layers[i].gradients, host(reference.layers[i].gradients), `${model.name} gradient at ${layer}`);
  });
  assertClose(onnx.input as HostTensor, host(reference.input as tf.Tensor), `${model.name} input gradient`);
  tf.dispose([...reference.layers.flatMap((l) => [l.activations, l.gradients]), reference.input as tf.Tensor]);
}

async function assertModifiedGradient(model: tf.LayersModel, x: tf.Tensor4D, targets: number[], rule: 'guided' | 'deeplift'): Promise<void> {
  const onnx = await onnxGradients(model, x, targets, [], true, rule);
  const reference = modifiedInputGradient(model, x, targets, rule === 'guided' ? guidedBackpropRules() : deepLiftRules());
  assertClose(onnx.input as HostTensor, host(reference), `${model.name} ${rule} input gradient`);
  reference.dispose();
}

/** ForwardFromLayer through the exported graph: activations NHWC, input 1 row or one per row. */
async function onnxForwardFrom(model: tf.LayersModel, layer: string, activations: tf.Tensor, input?: tf.Tensor4D): Promise<HostTensor> {
  const rows = activations.shape[0];
  const exported = exportLayersModel(model, { batch: 1, leaveOutSoftmax: true });
  const value = exported.layerValues.get(layer) as string;
  const built = buildForwardFromValue(exported.graph, { value, score: exported.output, rows, inputRows: input?.shape[0] ?? 1, layout: exported.layouts.get(value) });
  const feeds: Record<string, HostTensor> = { [built.activations]: host(activations) };
  if (built.input) feeds[built.input] = host(input as tf.Tensor);
  return (await run(built.graph, feeds, [built.score]))[0];
}

function seeded<T extends tf.LayersModel>(build: () => T, seed = 1): T {
  const model = withSeededMathRandom(seed, build);
  randomizeWeights(model, seed);
  return model;
}

const images = (batch: number, size: number, seed: number) => tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;

/** Every activation DeepLift rescales, a Relu feeding another rule node directly, max pools (same, valid) and an average pool. */
function activationZoo(): tf.LayersModel {
  const input = tf.input({ shape: [13, 13, 3] });
  const conv = (filters: number, activation: string, name: string) => tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: activation as 'relu', name });
  let x = conv(6, 'elu', 'c_elu').apply(input) as tf.SymbolicTensor;
  x = conv(6, 'linear', 'c2').apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'relu_a' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'softplus', name: 'softplus_after_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool_same' }).apply(x) as tf.SymbolicTensor;
  x = conv(8, 'tanh', 'c_tanh').apply(x) as tf.SymbolicTensor;
  x = conv(8, 'relu', 'c_relu').apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool_valid' }).apply(x) as tf.SymbolicTensor;
  x = conv(8, 'sigmoid', 'c_sigmoid').apply(x) as tf.SymbolicTensor;
  // 'valid': tfjs 4.22's AvgPoolGrad divides by the whole window where a 'same' window holds pads, although its forward does not count them (the per-op checks cover pads).
  x = tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'valid', name: 'avg' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: 'flat' }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 4, name: 'logits' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: 'zoo' });
}

describe('ONNX gradient graphs of exported models against the tfjs engine', () => {
  let tiny: tf.LayersModel;
  let tinyX: tf.Tensor4D;

  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
    tiny = await loadLayersModel(TINY_CNN);
    const inputs = await readNpy(path.join(TINY_CNN, 'inputs.npy'));
    tinyX = tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
  });
  after(() => {
    tiny.dispose();
    tinyX.dispose();
    tf.disposeVariables();
  });

  it('tiny-cnn: input gradient, and activations and gradients at several layers at once', async () => {
    const targets = [0, 1, 2, 3];
    const onnx = await onnxGradients(tiny, tinyX, targets, [], true, 'plain');
    assertClose(onnx.input as HostTensor, host(inputGradient(tiny, tinyX, targets)), 'tiny-cnn input gradient');
    await assertLayerGradients(tiny, tinyX, [3, 2, 1, 0], ['conv1', 'pool1', 'bn2', 'relu3', 'gap']);
  });

  it('tiny-cnn: guided backprop and DeepLift (ReLU → max pool: the upstream rule sees the plain gradient)', async () => {
    const targets = [1, 0, 3, 2];
    await assertModifiedGradient(tiny, tinyX, targets, 'guided');
    const both = tf.concat([tf.slice(tinyX, [0, 0, 0, 0], [2, -1, -1, -1]), tf.zeros([2, 64, 64, 3])]) as tf.Tensor4D;
    await assertModifiedGradient(tiny, both, [1, 0, 1, 0], 'deeplift');
    const references = tf.concat([tf.slice(tinyX, [0, 0, 0, 0], [2, -1, -1, -1]), tf.slice(tinyX, [2, 0, 0, 0], [2, -1, -1, -1])]) as tf.Tensor4D;
    await assertModifiedGradient(tiny, references, [2, 3, 2, 3], 'deeplift');
  });

  it('every activation DeepLift rescales, rules feeding rules, same and valid max pools', async () => {
    const model = seeded(activationZoo, 3);
    const x = images(3, 13, 4);
    const references = tf.mul(images(3, 13, 5), 0.3);
    const both = tf.concat([x, references]) as tf.Tensor4D;
    await assertModifiedGradient(model, both, [0, 1, 2, 0, 1, 2], 'deeplift');
    await assertModifiedGradient(model, x, [3, 2, 1], 'guided');
    await assertLayerGradients(model, x, [0, 3, 1], ['c_elu', 'relu_a', 'pool_same', 'c_sigmoid', 'avg']);
    model.dispose();
  });

  it('tiny-cnn: forward from a layer, many rows of activations', async () => {
    const [activations] = layerOutputs(tiny, tf.slice(tinyX, [0, 0, 0, 0], [1, -1, -1, -1]), ['relu3']);
    const rows = tf.mul(tf.tile(activations, [5, 1, 1, 1]), tf.reshape(tf.tensor1d([1, 0, 0.5, 2, -1]), [5, 1, 1, 1]));
    assertClose(await onnxForwardFrom(tiny, 'relu3', rows), host(forwardFromLayer(tiny, 'relu3', rows)), 'tiny-cnn from relu3');
    tf.dispose([activations, rows]);
  });

  it('mobilenet-v2: layer gradients at a residual add and the head; forward from inside a residual block needs the input', async () => {
    const model = seeded(() => buildMobileNetV2({ widthMult: 0.25, numClasses: 3, inputSize: 33 }));
    const x = images(2, 33, 7);
    await assertLayerGradients(model, x, [2, 0], ['features_1_conv_0_0', 'features_3_add', 'features_18_2']);
    const layer = 'features_3_conv_0_2';
    const [activation] = layerOutputs(model, tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1]), [layer]);
    const rows = tf.mul(tf.tile(activation, [3, 1, 1, 1]), tf.reshape(tf.tensor1d([1, 0, -0.5]), [3, 1, 1, 1]));
    const one = tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
    assertClose(await onnxForwardFrom(model, layer, rows, one), host(forwardFromLayer(model, layer, rows, { input: one })), 'mobilenet-v2 from a block, input given once');
    const each = tf.tile(one, [3, 1, 1, 1]) as tf.Tensor4D;
    assertClose(await onnxForwardFrom(model, layer, rows, each), host(forwardFromLayer(model, layer, rows, { input: each })), 'mobilenet-v2 from a block, input per row');
    tf.dispose([activation, rows, one, each, x]);
    model.dispose();
  });

  it('resnet, googlenet (ceil-mode pools, concatenations) and densenet (average pools): input gradients; resnet guided and DeepLift', async () => {
    const resnet = seeded(() => buildResNet({ block: 'basic', layers: [1, 1, 1, 1], numClasses: 3, inputSize: 33 }));
    const x = images(2, 33, 8);
    await assertLayerGradients(resnet, x, [0, 2], ['maxpool', 'layer2_0_add', 'layer4_0']);
    await assertModifiedGradient(resnet, x, [1, 2], 'guided');
    await assertModifiedGradient(resnet, tf.concat([x, tf.zerosLike(x)]) as tf.Tensor4D, [1, 2, 1, 2], 'deeplift');
    resnet.dispose();
    const googlenet = seeded(() => buildGoogLeNet({ numClasses: 3, inputSize: 35, transformInput: true }));
    const y = images(2, 35, 9);
    await assertLayerGradients(googlenet, y, [1, 0], ['maxpool1', 'inception3a']);
    googlenet.dispose();
    const densenet = seeded(() => buildDenseNet({ growthRate: 4, blockConfig: [2, 1, 1, 1], numInitFeatures: 8, bnSize: 2, numClasses: 3, inputSize: 35 }));
    await assertLayerGradients(densenet, y, [2, 1], ['features_transition1_pool', 'features_norm5_relu']);
    densenet.dispose();
  });
});
