/**
 * salgrid's wasm training kernels against the cpu backend: each kernel on the
 * same inputs (strides 1–3, paddings same / valid / explicit, odd and even
 * sizes, several channel counts), then whole training steps of a small CNN and
 * a MobileNetV2-shaped net. Inputs are plain arrays, re-created as tensors on
 * each backend.
 *
 * Tolerance: max |wasm − cpu| ≤ 1e-4 × max |cpu| per kernel output (both sum
 * the same float32 products in different orders; observed ≤ 5e-7). Training
 * steps use the same 1e-4 with the scale rule of compareTraining (observed:
 * gradients ≤ 4e-6, weights after two steps ≤ 3e-5). Every comparison also
 * checks that no tensor or backend buffer is left behind.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../src/core/random.ts';
import { inputGradient, layerOutputs } from '../src/core/tensor/gradients.ts';
import { conv2dBackpropInput } from '../src/core/tensor/wasm-kernels/conv2d-backprop-input.ts';
import { WASM_TRAINING_KERNELS, registerWasmTrainingKernels } from '../src/core/tensor/wasm-kernels/index.ts';
import { unsortedSegmentSum } from '../src/core/tensor/wasm-kernels/unsorted-segment-sum.ts';
import { initWasmBackend } from '../src/core/tensor/wasm-setup.ts';
import { integrationPoints } from '../src/plugins/explainers/attribution/integrated-gradients.ts';
import { largestError } from './helpers.ts';

const RELATIVE_TOLERANCE = 1e-4;

/** wasm's own Conv2DBackpropInput, kept before salgrid's faster one may replace it in this process. */
const WASM_OWN_CONV2D_BACKPROP_INPUT = tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc;

type Shape = number[];
interface Input { values: Float32Array | Int32Array; shape: Shape; dtype?: 'float32' | 'int32' }

function randomValues(shape: Shape, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 2 - 1);
}

function floatInput(shape: Shape, seed: number): Input {
  return { values: randomValues(shape, seed), shape };
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  const { error, scale } = largestError(actual, expected);
  return scale === 0 ? error : error / scale;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tolerance = RELATIVE_TOLERANCE): void {
  const error = maxRelativeError(actual, expected);
  assert.ok(error <= tolerance, `${what}: relative error ${error.toExponential(2)} > ${tolerance}`);
}

/** Runs `compute` on a backend from plain arrays; checks it leaves no tensor behind. */
async function onBackend(backend: 'cpu' | 'wasm', inputs: Record<string, Input>, compute: (t: Record<string, tf.Tensor>) => tf.Tensor): Promise<Float32Array | Int32Array> {
  await tf.setBackend(backend);
  const tensorsBefore = tf.memory().numTensors;
  const buffersBefore = tf.engine().backend.numDataIds();
  const result = tf.tidy(() => {
    const tensors = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, tf.tensor(input.values, input.shape, input.dtype ?? 'float32')]));
    return compute(tensors);
  });
  const values = (await result.data()) as Float32Array | Int32Array;
  result.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore, `${backend}: tensors leaked`);
  assert.equal(tf.engine().backend.numDataIds(), buffersBefore, `${backend}: backend buffers leaked`);
  return values;
}

async function compareKernel(kernelName: string, inputs: Record<string, Input>, attrs: object, what: string): Promise<void> {
  const run = (t: Record<string, tf.Tensor>) => tf.engine().runKernel(kernelName, t, attrs as tf.NamedAttrMap) as tf.Tensor;
  const expected = await onBackend('cpu', inputs, run);
  const actual = await onBackend('wasm', inputs, run);
  assertClose(actual, expected, `${kernelName} ${what}`);
}

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase { n: number; h: number; w: number; c: number; k: [number, number]; s: number | [number, number]; pad: Pad; co?: number; m?: number; d?: number }

const describeCase = (k: ConvCase) =>
  `n${k.n} ${k.h}×${k.w}×${k.c} k${k.k.join('×')} s${k.s} pad ${JSON.stringify(k.pad)}${k.co ? ` co${k.co}` : ''}${k.m ? ` m${k.m}` : ''}${k.d ? ` d${k.d}` : ''}`;

const CONV_CASES: ConvCase[] = [
  { n: 2, h: 8, w: 8, c: 3, k: [3, 3], s: 1, pad: 'same', co: 4 },
  { n: 2, h: 7, w: 9, c: 1, k: [3, 3], s: 1, pad: 'valid', co: 5 },
  { n: 2, h: 8, w: 8, c: 3, k: [3, 3], s: 2, pad: 'same', co: 8 },
  { n: 2, h: 9, w: 7, c: 4, k: [3, 3], s: 2, pad: 'same', co: 3 },
  { n: 1, h: 9, w: 9, c: 2, k: [3, 3], s: 2, pad: 'valid', co: 6 },
  { n: 2, h: 10, w: 10, c: 3, k: [2, 2], s: 2, pad: 'same', co: 4 },
  { n: 2, h: 11, w: 8, c: 5, k: [5, 3], s: [2, 1], pad: 'same', co: 2 },
  { n: 2, h: 13, w: 12, c: 3, k: [3, 3], s: 3, pad: 'same', co: 4 },
  { n: 2, h: 8, w: 8, c: 6, k: [1, 1], s: 1, pad: 'valid', co: 5 },
  { n: 2, h: 9, w: 9, c: 6, k: [1, 1], s: 2, pad: 'valid', co: 5 },
  { n: 2, h: 9, w: 8, c: 3, k: [3, 3], s: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]], co: 4 },
  { n: 2, h: 8, w: 8, c: 3, k: [3, 3], s: 1, pad: [[0, 0], [2, 0], [1, 1], [0, 0]], co: 4 },
  { n: 2, h: 8, w: 9, c: 3, k: [3, 3], s: 2, pad: 1, co: 4 },
  { n: 1, h: 12, w: 12, c: 16, k: [3, 3], s: 2, pad: 'same', co: 8 },
  { n: 1, h: 7, w: 6, c: 2, k: [3, 3], s: 2, pad: [[0, 0], [3, 0], [0, 4], [0, 0]], co: 3 },
];

function convOutput(k: ConvCase, depthwise: boolean) {
  const filter: [number, number, number, number] = [k.k[0], k.k[1], k.c, depthwise ? k.m ?? 1 : k.co ?? 1];
  return tf.backend_util.computeConv2DInfo([k.n, k.h, k.w, k.c], filter, k.s, k.d ?? 1, k.pad, undefined, depthwise);
}

before(async () => {
  await initWasmBackend();
});

describe('wasm setup', () => {
  it('loads the binaries from node_modules, starts wasm and registers the kernels idempotently', async () => {
    const info = await initWasmBackend();
    assert.equal(tf.getBackend(), 'wasm');
    assert.match(info.wasmDir, /tfjs-backend-wasm/);
    assert.equal(info.threads, 1);
    for (const name of WASM_TRAINING_KERNELS) assert.ok(tf.getKernel(name, 'wasm'), `${name} registered`);
    assert.deepEqual(registerWasmTrainingKernels(), [], 'a second registration registers nothing');
  });

  it('accepts bare TensorInfos as kernel inputs without freeing or leaking them', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const ids = tf.tensor1d([1, 0, 1], 'int32');
    const before = tf.memory().numTensors;
    const bare = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const out = unsortedSegmentSum({ inputs: { x: bare(x), segmentIds: bare(ids) }, backend: tf.backend(), attrs: { numSegments: 2 } });
    assert.deepEqual(await out.array(), [[3, 4], [6, 8]]);
    out.dispose();
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(await x.array(), [[1, 2], [3, 4], [5, 6]], 'inputs still alive');
    tf.dispose([x, ids]);
  });
});

describe('Conv2DBackpropFilter on wasm', () => {
  for (const k of CONV_CASES) {
    it(describeCase(k), async () => {
      const info = convOutput(k, false);
      const inputs = { x: floatInput([k.n, k.h, k.w, k.c], 1), dy: floatInput([k.n, info.outHeight, info.outWidth, k.co!], 2) };
      await compareKernel('Conv2DBackpropFilter', inputs, { strides: k.s, pad: k.pad, dataFormat: 'NHWC', filterShape: [k.k[0], k.k[1], k.c, k.co] }, describeCase(k));
    });
  }

  it('matches a brute-force sum at stride 2 (independent of the cpu backend)', async () => {
    const [n, h, w, ci, co, kh, kw, s] = [2, 7, 6, 2, 3, 3, 3, 2];
    const info = tf.backend_util.computeConv2DInfo([n, h, w, ci], [kh, kw, ci, co], s, 1, 'same');
    const { outHeight: oh, outWidth: ow, padInfo } = info;
    const x = randomValues([n, h, w, ci], 5);
    const dy = randomValues([n, oh, ow, co], 6);
    const expected = new Float32Array(kh * kw * ci * co);
    for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) {
      let sum = 0;
      for (let b0 = 0; b0 < n; b0++) for (let r = 0; r < oh; r++) for (let q = 0; q < ow; q++) {
        const xr = r * s + a - padInfo.top;
        const xc = q * s + b - padInfo.left;
        if (xr < 0 || xc < 0 || xr >= h || xc >= w) continue;
        sum += x[((b0 * h + xr) * w + xc) * ci + i] * dy[((b0 * oh + r) * ow + q) * co + o];
      }
      expected[((a * kw + b) * ci + i) * co + o] = sum;
    }
    const actual = await onBackend('wasm', { x: { values: x, shape: [n, h, w, ci] }, dy: { values: dy, shape: [n, oh, ow, co] } }, (t) =>
      tf.engine().runKernel('Conv2DBackpropFilter', t, { strides: s, pad: 'same', dataFormat: 'NHWC', filterShape: [kh, kw, ci, co] }) as tf.Tensor);
    assertClose(actual, expected, 'brute force');
  });

  it('refuses NCHW with a clear error', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 2, 4, 4]);
    const dy = tf.zeros([1, 3, 4, 4]);
    assert.throws(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] }), /NHWC only/);
    tf.dispose([x, dy]);
  });
});

const DEPTHWISE_CASES: ConvCase[] = [
  { n: 2, h: 8, w: 8, c: 3, k: [3, 3], s: 1, pad: 'same' },
  { n: 2, h: 7, w: 7, c: 1, k: [3, 3], s: 1, pad: 'valid' },
  { n: 2, h: 8, w: 8, c: 4, k: [3, 3], s: 2, pad: 'same' },
  { n: 2, h: 9, w: 9, c: 3, k: [3, 3], s: 2, pad: 'same' },
  { n: 1, h: 9, w: 8, c: 2, k: [3, 3], s: 2, pad: 'valid' },
  { n: 2, h: 10, w: 10, c: 5, k: [2, 2], s: 2, pad: 'same' },
  { n: 2, h: 6, w: 11, c: 8, k: [5, 3], s: 1, pad: 'same' },
  { n: 2, h: 9, w: 8, c: 3, k: [3, 3], s: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { n: 2, h: 8, w: 8, c: 3, k: [3, 3], s: 1, pad: 'same', m: 2 },
  { n: 2, h: 9, w: 9, c: 2, k: [3, 3], s: 2, pad: 'valid', m: 3 },
  { n: 2, h: 13, w: 13, c: 4, k: [3, 3], s: 3, pad: 'same' },
  { n: 1, h: 7, w: 6, c: 2, k: [3, 3], s: 1, pad: [[0, 0], [3, 0], [0, 4], [0, 0]] },
  { n: 1, h: 7, w: 6, c: 2, k: [3, 3], s: 2, pad: [[0, 0], [3, 1], [0, 4], [0, 0]], m: 2 },
];

describe('DepthwiseConv2dNative backprops on wasm', () => {
  for (const k of DEPTHWISE_CASES) {
    it(describeCase(k), async () => {
      const info = convOutput(k, true);
      const m = k.m ?? 1;
      const dy = floatInput([k.n, info.outHeight, info.outWidth, k.c * m], 3);
      const common = { strides: k.s, pad: k.pad, dilations: k.d ?? 1 };
      await compareKernel('DepthwiseConv2dNativeBackpropFilter', { x: floatInput([k.n, k.h, k.w, k.c], 4), dy }, { ...common, filterShape: [k.k[0], k.k[1], k.c, m] }, `filter ${describeCase(k)}`);
      await compareKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: floatInput([k.k[0], k.k[1], k.c, m], 5) }, { ...common, inputShape: [k.n, k.h, k.w, k.c] }, `input ${describeCase(k)}`);
    });
  }
});

/** Both depthwise gradients by their defining sums, for checks that must not lean on the cpu backend. */
function bruteForceDepthwise(k: ConvCase, x: Float32Array, dy: Float32Array, filter: Float32Array) {
  const info = convOutput(k, true);
  const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, padInfo } = info;
  const m = k.m ?? 1;
  const [kh, kw] = k.k;
  const dFilter = new Float32Array(kh * kw * k.c * m);
  const dx = new Float32Array(k.n * k.h * k.w * k.c);
  for (let b0 = 0; b0 < k.n; b0++) for (let r = 0; r < oh; r++) for (let q = 0; q < ow; q++) for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) {
    const xr = r * sh + a * dh - padInfo.top;
    const xc = q * sw + b * dw - padInfo.left;
    if (xr < 0 || xc < 0 || xr >= k.h || xc >= k.w) continue;
    for (let c = 0; c < k.c; c++) for (let j = 0; j < m; j++) {
      const g = dy[((b0 * oh + r) * ow + q) * k.c * m + c * m + j];
      const xi = ((b0 * k.h + xr) * k.w + xc) * k.c + c;
      const wi = ((a * kw + b) * k.c + c) * m + j;
      dFilter[wi] += x[xi] * g;
      dx[xi] += filter[wi] * g;
    }
  }
  return { dFilter, dx };
}

describe('dilated DepthwiseConv2dNative backprops on wasm (against the defining sums: the cpu backend ignores dilations in the filter gradient)', () => {
  const cases: ConvCase[] = [
    { n: 2, h: 9, w: 9, c: 3, k: [3, 3], s: 1, pad: 'same', d: 2 },
    { n: 1, h: 10, w: 8, c: 2, k: [2, 3], s: 1, pad: 'valid', d: 3, m: 2 },
    { n: 2, h: 9, w: 8, c: 3, k: [3, 3], s: 2, pad: 'same' },
  ];
  for (const k of cases) {
    it(describeCase(k), async () => {
      const info = convOutput(k, true);
      const m = k.m ?? 1;
      const x = floatInput([k.n, k.h, k.w, k.c], 15);
      const dy = floatInput([k.n, info.outHeight, info.outWidth, k.c * m], 16);
      const filter = floatInput([k.k[0], k.k[1], k.c, m], 17);
      const expected = bruteForceDepthwise(k, x.values as Float32Array, dy.values as Float32Array, filter.values as Float32Array);
      const common = { strides: k.s, pad: k.pad, dilations: k.d ?? 1 };
      const dFilter = await onBackend('wasm', { x, dy }, (t) => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', t, { ...common, filterShape: [k.k[0], k.k[1], k.c, m] }) as tf.Tensor);
      const dx = await onBackend('wasm', { dy, filter }, (t) => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', t, { ...common, inputShape: [k.n, k.h, k.w, k.c] }) as tf.Tensor);
      assertClose(dFilter, expected.dFilter, 'filter gradient');
      assertClose(dx, expected.dx, 'input gradient');
    });
  }
});

describe('UnsortedSegmentSum on wasm', () => {
  const cases: { name: string; x: Input; ids: number[]; numSegments: number }[] = [
    { name: 'rows with repeated ids and an empty segment', x: floatInput([6, 3], 7), ids: [0, 2, 0, 1, 2, 2], numSegments: 4 },
    { name: 'a vector', x: floatInput([5], 8), ids: [1, 1, 0, 3, 1], numSegments: 4 },
    { name: 'rank-3 values', x: floatInput([4, 2, 3], 9), ids: [2, 0, 2, 2], numSegments: 3 },
    { name: 'ids out of range are dropped', x: floatInput([5, 2], 10), ids: [0, -1, 1, 7, 1], numSegments: 2 },
    { name: 'int32 values', x: { values: Int32Array.from([3, -4, 5, 6, 7, 8]), shape: [3, 2], dtype: 'int32' }, ids: [1, 0, 1], numSegments: 2 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      await compareKernel('UnsortedSegmentSum', { x: c.x, segmentIds: { values: Int32Array.from(c.ids), shape: [c.ids.length], dtype: 'int32' } }, { numSegments: c.numSegments }, c.name);
    });
  }

  it('carries the gradient of tf.gather', async () => {
    const inputs = { table: floatInput([7, 4], 11), weights: floatInput([5, 4], 12) };
    const indices = [3, 0, 3, 6, 1];
    const gradient = (t: Record<string, tf.Tensor>) => tf.grad((table: tf.Tensor) => tf.sum(tf.mul(tf.gather(table, tf.tensor1d(indices, 'int32')), t.weights)))(t.table);
    assertClose(await onBackend('wasm', inputs, gradient), await onBackend('cpu', inputs, gradient), 'gather gradient');
  });
});

describe('MaxPoolGrad on wasm (replacing tfjs-backend-wasm 4.22.0 own, which is wrong for windows ≤ 0)', () => {
  it('sends an all-negative window to its maximum and keeps an all-zero window', async () => {
    // Four 2×2 windows: all negative, mixed, all zero, tiny positive.
    const x = { values: Float32Array.from([-3, -1, -2, -5, 2, -1, 0.5, 4, 0, 0, 0, 0, 1e-39, 0, -1, 0]), shape: [4, 2, 2, 1] };
    const dyValues = tf.tensor([10, 20, 30, 40], [4, 1, 1, 1]);
    const gradient = (t: Record<string, tf.Tensor>) => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid'), t.dy)))(t.x);
    const inputs = { x, dy: { values: Float32Array.from(dyValues.dataSync()), shape: [4, 1, 1, 1] } };
    dyValues.dispose();
    const actual = Array.from(await onBackend('wasm', inputs, gradient));
    assert.deepEqual(actual, [0, 10, 0, 0, 0, 0, 0, 20, 30, 0, 0, 0, 40, 0, 0, 0]);
  });

  const poolCases: { h: number; w: number; k: number; s: number; pad: 'same' | 'valid' }[] = [];
  for (const [h, w] of [[8, 8], [9, 7], [7, 10]]) for (const k of [1, 2, 3]) for (const s of [1, 2, 3]) for (const pad of ['same', 'valid'] as const) poolCases.push({ h, w, k, s, pad });
  it(`matches cpu on ${poolCases.length} pool shapes, with signed inputs and with ReLU ties`, async () => {
    for (const p of poolCases) {
      const info = tf.backend_util.computePool2DInfo([2, p.h, p.w, 3], p.k, p.s, 1, p.pad);
      const inputs = { x: floatInput([2, p.h, p.w, 3], 13), dy: floatInput([2, info.outHeight, info.outWidth, 3], 14) };
      for (const relu of [false, true]) {
        const gradient = (t: Record<string, tf.Tensor>) =>
          tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.maxPool((relu ? tf.relu(v) : v) as tf.Tensor4D, p.k, p.s, p.pad), t.dy)))(t.x);
        assertClose(await onBackend('wasm', inputs, gradient), await onBackend('cpu', inputs, gradient), `${JSON.stringify(p)} relu ${relu}`);
      }
    }
  });
});

// ---- whole training steps ----------------------------------------------------------

type Builder = () => tf.LayersModel;

function smallCnn(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [17, 17, 3], filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }));
  model.add(tf.layers.reLU());
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.conv2d({ filters: 12, kernelSize: 3, padding: 'valid', activation: 'relu' }));
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: 4 }));
  return model;
}

function mobileNetV2Shaped(): tf.LayersModel {
  const L = tf.layers;
  const bnRelu6 = (x: tf.SymbolicTensor, relu = true) => {
    const y = L.batchNormalization().apply(x) as tf.SymbolicTensor;
    return relu ? (L.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor) : y;
  };
  const block = (x: tf.SymbolicTensor, inC: number, outC: number, stride: number, expand: number) => {
    let y = x;
    if (expand !== 1) y = bnRelu6(L.conv2d({ filters: inC * expand, kernelSize: 1, useBias: false }).apply(y) as tf.SymbolicTensor);
    y = bnRelu6(L.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false }).apply(y) as tf.SymbolicTensor);
    y = bnRelu6(L.conv2d({ filters: outC, kernelSize: 1, useBias: false }).apply(y) as tf.SymbolicTensor, false);
    return stride === 1 && inC === outC ? (L.add().apply([x, y]) as tf.SymbolicTensor) : y;
  };
  const input = tf.input({ shape: [64, 64, 3] });
  let x = bnRelu6(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(input) as tf.SymbolicTensor);
  x = block(x, 8, 8, 1, 1);
  x = block(x, 8, 12, 2, 4);
  x = block(x, 12, 12, 1, 4);
  x = block(x, 12, 16, 2, 4);
  x = bnRelu6(L.conv2d({ filters: 32, kernelSize: 1, useBias: false }).apply(x) as tf.SymbolicTensor);
  x = L.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const logits = L.dense({ units: 3 }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

interface TrainResult {
  initial: Float32Array[];
  /** Gradient of the loss at the initial weights, per weight (null for non-trainable ones). */
  gradients: (Float32Array | null)[];
  weights: Float32Array[];
  losses: number[];
  tensorsAfterStep: number[];
}

/**
 * Glorot-uniform weights from a fixed seed, constants (batch-norm and bias
 * initial values) kept. Fixed weights keep the comparison deterministic: an
 * activation that lands within rounding of a ReLU/ReLU6 corner (about one run
 * in ten with tfjs's random initialisers) legitimately flips one gradient
 * path between backends and moves whole gradients by ~1e-2.
 */
function seededWeights(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w, i) => {
    const values = w.dataSync() as Float32Array;
    if (values.every((v) => v === values[0])) return values;
    const shape = w.shape;
    const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
    const limit = Math.sqrt(6 / (receptive * (shape[shape.length - 2] + shape[shape.length - 1])));
    const random = seededRandom(1000 + i);
    return values.map(() => (random() * 2 - 1) * limit);
  });
}

/** The gradient at the initial weights, then two optimizer steps (so momentum and Adam's moments are used); softmax cross-entropy on logits. */
async function train(backend: 'cpu' | 'wasm', build: Builder, initial: Float32Array[] | null, optimizer: () => tf.Optimizer, x: Input, labels: number[], classes: number): Promise<TrainResult> {
  await tf.setBackend(backend);
  const model = build();
  const weights0 = initial ?? seededWeights(model);
  model.setWeights(weights0.map((values, i) => tf.tensor(values, model.weights[i].shape as number[])));
  const read = () => model.getWeights().map((w) => w.dataSync() as Float32Array);
  const start = read();
  const xs = tf.tensor(x.values, x.shape);
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
  const loss = () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar;

  const variables = model.weights.filter((w) => w.trainable).map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(loss, variables);
  const byName = new Map(Object.entries(grads).map(([name, g]) => [name, g.dataSync() as Float32Array]));
  const gradients = model.weights.map((w) => (w.trainable ? byName.get((w.read() as tf.Variable).name) ?? null : null));
  tf.dispose([value, grads]);

  const opt = optimizer();
  const losses: number[] = [];
  const tensorsAfterStep: number[] = [];
  for (let step = 0; step < 2; step++) {
    const stepLoss = opt.minimize(loss, true)!;
    losses.push((await stepLoss.data())[0]);
    stepLoss.dispose();
    tensorsAfterStep.push(tf.memory().numTensors);
  }
  const weights = read();
  tf.dispose([xs, ys]);
  opt.dispose();
  model.dispose();
  return { initial: start, gradients, weights, losses, tensorsAfterStep };
}

function maxAbs(values: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i]));
  return largest;
}

/**
 * Per weight, errors are relative to the larger of its own scale and the
 * net's largest (for gradients, a tenth of the largest): float32 rounding is
 * relative to the big numbers a sum passes through, not to a tiny result
 * (a moving mean of zero-mean activations is ~1e-7 of noise). Some weights have no
 * gradient signal at all: a batch-norm shift whose output reaches another
 * batch norm only through linear layers (every MobileNetV2 projection's beta)
 * has a true gradient of zero, so both backends compute rounding noise there
 * (~1e-8). Adam scales any non-zero gradient, noise included, to a step of
 * ±lr, so with Adam such weights are left out of the after-step comparison.
 */
async function compareTraining(build: Builder, optimizer: () => tf.Optimizer, rescalesGradients: boolean, x: Input, labels: number[], classes: number): Promise<void> {
  const cpu = await train('cpu', build, null, optimizer, x, labels, classes);
  const wasm = await train('wasm', build, cpu.initial, optimizer, x, labels, classes);
  assert.equal(wasm.tensorsAfterStep[1], wasm.tensorsAfterStep[0], 'wasm training step leaks tensors');
  assertClose(wasm.losses, cpu.losses, 'losses');
  assert.equal(wasm.weights.length, cpu.weights.length);
  const largestGradient = Math.max(...cpu.gradients.map((g) => (g ? maxAbs(g) : 0)));
  const largestWeight = Math.max(...cpu.weights.map(maxAbs));
  const check = (actual: Float32Array, expected: Float32Array, floor: number, what: string) => {
    const error = maxAbs(expected.map((v, j) => v - actual[j])) / Math.max(maxAbs(expected), floor);
    assert.ok(error <= RELATIVE_TOLERANCE, `${what}: relative error ${error.toExponential(2)} > ${RELATIVE_TOLERANCE}`);
  };
  let compared = 0;
  cpu.weights.forEach((expected, i) => {
    const gradient = cpu.gradients[i];
    if (gradient) {
      check(wasm.gradients[i]!, gradient, 0.1 * largestGradient, `gradient of weight ${i}`);
      if (rescalesGradients && maxAbs(gradient) < 1e-4 * largestGradient) return;
    }
    check(wasm.weights[i], expected, largestWeight, `weight ${i} after the steps`);
    compared++;
  });
  assert.ok(compared >= cpu.weights.length / 2, `only ${compared} of ${cpu.weights.length} weights had a gradient signal to compare`);
}

describe('a training step on wasm equals the same step on cpu', () => {
  const smallInput = floatInput([4, 17, 17, 3], 21);
  it('small CNN (conv → relu → maxpool → batchnorm → conv → GAP → dense), SGD with momentum', async () => {
    await compareTraining(smallCnn, () => tf.train.momentum(0.05, 0.9), false, smallInput, [0, 1, 2, 3], 4);
  });
  it('small CNN, Adam', async () => {
    await compareTraining(smallCnn, () => tf.train.adam(1e-3), true, smallInput, [0, 1, 2, 3], 4);
  });
  const mobileInput = floatInput([2, 64, 64, 3], 22);
  it('MobileNetV2-shaped net at 64×64 (depthwise + pointwise, batch norm, relu6, residuals), SGD with momentum', async () => {
    await compareTraining(mobileNetV2Shaped, () => tf.train.momentum(0.05, 0.9), false, mobileInput, [0, 2], 3);
  });
  it('MobileNetV2-shaped net at 64×64, Adam', async () => {
    await compareTraining(mobileNetV2Shaped, () => tf.train.adam(1e-3), true, mobileInput, [0, 2], 3);
  });
});

describe('opt-in faster Conv2DBackpropInput on wasm', () => {
  for (const k of CONV_CASES) {
    it(describeCase(k), async () => {
      const info = convOutput(k, false);
      const inputs = { dy: floatInput([k.n, info.outHeight, info.outWidth, k.co!], 18), filter: floatInput([k.k[0], k.k[1], k.c, k.co!], 19) };
      const attrs = { strides: k.s, pad: k.pad, dataFormat: 'NHWC', inputShape: [k.n, k.h, k.w, k.c] } as unknown as tf.NamedAttrMap;
      const expected = await onBackend('cpu', inputs, (t) => tf.engine().runKernel('Conv2DBackpropInput', t, attrs) as tf.Tensor);
      const actual = await onBackend('wasm', inputs, (t) => conv2dBackpropInput({ inputs: t, backend: tf.backend(), attrs }));
      assertClose(actual, expected, describeCase(k));
    });
  }

  it('trains the MobileNetV2-shaped net like cpu once registered', async () => {
    assert.deepEqual(registerWasmTrainingKernels({ fastConv2DBackpropInput: true }), ['Conv2DBackpropInput']);
    assert.deepEqual(registerWasmTrainingKernels({ fastConv2DBackpropInput: true }), []);
    await compareTraining(mobileNetV2Shaped, () => tf.train.momentum(0.05, 0.9), false, floatInput([2, 64, 64, 3], 22), [0, 2], 3);
    await compareTraining(smallCnn, () => tf.train.adam(1e-3), true, floatInput([4, 17, 17, 3], 21), [0, 1, 2, 3], 4);
  });
});

// ---- integrated gradients of a small residual net, wasm against cpu (issue 14, item 6) ---------------

/**
 * The input-gradient kernels at the shapes integrated gradients runs them on
 * (a 48×48 RGB batch into a 3×3 stride-2 'same' stem; a depthwise 3×3 at
 * 24×24), against their defining sums in float64 — independent of the cpu
 * backend. dy is mostly zeros, as after ReLU masks.
 */
describe('input-gradient kernels on wasm at the shapes of an integrated-gradients batch', () => {
  const stem = { n: 8, h: 48, w: 48, c: 3, k: [3, 3] as [number, number], s: 2, pad: 'same' as const, co: 8 };
  const sparse = (shape: Shape, seed: number) => {
    const random = seededRandom(seed);
    return { values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (random() < 0.7 ? 0 : random() * 2 - 1)), shape };
  };

  function bruteForceConvInput(k: ConvCase, dy: Float32Array, filter: Float32Array): Float64Array {
    const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, padInfo } = convOutput(k, false);
    const [kh, kw] = k.k;
    const co = k.co!;
    const dx = new Float64Array(k.n * k.h * k.w * k.c);
    for (let b0 = 0; b0 < k.n; b0++) for (let r = 0; r < oh; r++) for (let q = 0; q < ow; q++) for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) {
      const xr = r * sh + a - padInfo.top;
      const xc = q * sw + b - padInfo.left;
      if (xr < 0 || xc < 0 || xr >= k.h || xc >= k.w) continue;
      for (let i = 0; i < k.c; i++) {
        let sum = 0;
        for (let o = 0; o < co; o++) sum += filter[((a * kw + b) * k.c + i) * co + o] * dy[((b0 * oh + r) * ow + q) * co + o];
        dx[((b0 * k.h + xr) * k.w + xc) * k.c + i] += sum;
      }
    }
    return dx;
  }

  it(`Conv2DBackpropInput, wasm's own and salgrid's faster one: ${describeCase(stem)}`, async () => {
    const info = convOutput(stem, false);
    const dy = sparse([stem.n, info.outHeight, info.outWidth, stem.co], 31);
    const filter = floatInput([3, 3, stem.c, stem.co], 32);
    const expected = bruteForceConvInput(stem, dy.values, filter.values as Float32Array);
    const attrs = { strides: stem.s, pad: stem.pad, dataFormat: 'NHWC', inputShape: [stem.n, stem.h, stem.w, stem.c] } as unknown as tf.NamedAttrMap;
    const own = await onBackend('wasm', { dy, filter }, (t) => tf.engine().makeTensorFromTensorInfo(WASM_OWN_CONV2D_BACKPROP_INPUT({ inputs: t, backend: tf.backend(), attrs }) as tf.TensorInfo));
    const faster = await onBackend('wasm', { dy, filter }, (t) => conv2dBackpropInput({ inputs: t, backend: tf.backend(), attrs }));
    assertClose(own, expected, "wasm's own");
    assertClose(faster, expected, "salgrid's");
  });

  it('DepthwiseConv2dNativeBackpropInput: n50 24×24×8 k3×3 s1 same', async () => {
    const k: ConvCase = { n: 50, h: 24, w: 24, c: 8, k: [3, 3], s: 1, pad: 'same' };
    const dy = sparse([k.n, k.h, k.w, k.c], 33);
    const filter = floatInput([3, 3, k.c, 1], 34);
    const { dx: expected } = bruteForceDepthwise(k, new Float32Array(k.n * k.h * k.w * k.c), dy.values, filter.values as Float32Array);
    const actual = await onBackend('wasm', { dy, filter }, (t) => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', t, { strides: 1, pad: 'same', dilations: 1, inputShape: [k.n, k.h, k.w, k.c] }) as tf.Tensor);
    assertClose(actual, expected, 'input gradient');
  });
});

/**
 * The case of issue 14 (item 6): integrated gradients (50 Gauss–Legendre
 * steps, zero baseline) of a small residual net at 48×48 — stem conv, batch
 * norm, ReLU6; depthwise and pointwise convs with batch norm and ReLU6; a
 * residual Add; average pooling; a 1×1 head conv with ReLU; global pooling;
 * 3 classes — on wasm (with wasm's own Conv2DBackpropInput and with
 * salgrid's) against cpu, on the raw attributions.
 *
 * Both backends compute the forward pass to float32 rounding (observed
 * ≤ 3e-7 relative) but not bit for bit: XNNPACK sums in another order. A
 * pre-activation that lands within that rounding of a ReLU/ReLU6 corner
 * (|z| ≲ 1e-7; 2 images of 60 in a sweep of this net at widths 8 and 32)
 * then has its gradient mask set on one backend and cleared on the other,
 * and the attribution moves by up to ~1e-2 of its maximum inside that one
 * unit's receptive field (a 3×3 patch for a stem unit: the issue's "single
 * pixels") while every other pixel agrees to 1e-7. No kernel is wrong
 * there: image seed 8 has such a tie (a stem unit at IG step 21: cpu −5.9e-9,
 * wasm +2.5e-9, float64 −5.95e-9). So the comparison finds every unit whose
 * mask differs between the backends and leaves out only those units'
 * receptive fields; everywhere else the attributions must agree to 1e-6 of
 * their maximum, and such ties must stay rare. (A kernel error at one input
 * pixel, e.g. 4 % at one pixel of Conv2DBackpropInput's output, fails this.)
 */
describe('integrated gradients of a small residual net on wasm equal cpu (issue 14)', () => {
  const SIZE = 48;
  const STEPS = 50;
  const TARGET = 0;
  const IMAGE_SEEDS = [7, 8];
  /** The ReLU6 inputs (batch-norm outputs) and the head conv's ReLU output: the values whose masks gate the gradient. */
  const GATES = ['stem_bn', 'dw_bn', 'head'] as const;

  function residualNet(): tf.LayersModel {
    const L = tf.layers;
    const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
    const input = tf.input({ shape: [SIZE, SIZE, 3] });
    const stemConv = apply(L.conv2d({ name: 'stem', filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), input);
    const stem = apply(L.reLU({ name: 'stem_relu6', maxValue: 6 }), apply(L.batchNormalization({ name: 'stem_bn' }), stemConv));
    const dw = apply(L.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same', useBias: false }), stem);
    const dwOut = apply(L.reLU({ name: 'dw_relu6', maxValue: 6 }), apply(L.batchNormalization({ name: 'dw_bn' }), dw));
    const pw = apply(L.batchNormalization({ name: 'pw_bn' }), apply(L.conv2d({ name: 'pw', filters: 8, kernelSize: 1, useBias: false }), dwOut));
    const pooled = apply(L.averagePooling2d({ name: 'pool', poolSize: 2, strides: 2 }), apply(L.add({ name: 'add' }), [stem, pw]));
    const head = apply(L.conv2d({ name: 'head', filters: 16, kernelSize: 1, activation: 'relu' }), pooled);
    const logits = apply(L.dense({ name: 'logits', units: 3 }), apply(L.globalAveragePooling2d({ name: 'gap' }), head));
    return tf.model({ inputs: input, outputs: logits });
  }

  /** Seeded weights with non-trivial batch-norm statistics, so that every batch norm shifts and scales. */
  function residualWeights(model: tf.LayersModel): tf.Tensor[] {
    return model.weights.map((w, i) => {
      const random = seededRandom(1000 + i);
      const shape = w.shape as number[];
      const size = shape.reduce((a, b) => a * b, 1);
      const draw = (f: () => number) => tf.tensor(Float32Array.from({ length: size }, f), shape);
      if (/moving_variance|gamma/.test(w.name)) return draw(() => 0.5 + random());
      if (/moving_mean|beta/.test(w.name)) return draw(() => (random() - 0.5) * 0.4);
      if (/bias/.test(w.name)) return draw(() => (random() - 0.5) * 0.2);
      const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
      const limit = 2 * Math.sqrt(6 / (receptive * (shape[shape.length - 2] + shape[shape.length - 1])));
      return draw(() => (random() * 2 - 1) * limit);
    });
  }

  const image = (seed: number) => {
    const random = seededRandom(seed);
    return Float32Array.from({ length: SIZE * SIZE * 3 }, () => random());
  };

  interface IgRun { attributions: Float32Array; gates: Float32Array[]; gateShapes: number[][] }

  /** x ⊙ Σₖ wₖ ∇f(αₖ x), and the gate values of every step. */
  async function integratedGradients(backend: 'cpu' | 'wasm', seed: number): Promise<IgRun> {
    await tf.setBackend(backend);
    const model = residualNet();
    const weights = residualWeights(model);
    model.setWeights(weights);
    tf.dispose(weights);
    const x = image(seed);
    const { alphas, weights: stepWeights } = integrationPoints('gausslegendre', STEPS);
    const { gradient, gates } = tf.tidy(() => {
      const path = tf.mul(tf.tensor4d(alphas, [STEPS, 1, 1, 1]), tf.tensor4d(x, [1, SIZE, SIZE, 3]));
      return { gradient: inputGradient(model, path, alphas.map(() => TARGET)), gates: layerOutputs(model, path, [...GATES]) };
    });
    const g = (await gradient.data()) as Float32Array;
    const gateValues = await Promise.all(gates.map(async (t) => (await t.data()) as Float32Array));
    const gateShapes = gates.map((t) => t.shape);
    tf.dispose([gradient, ...gates]);
    model.dispose();
    const pixels = SIZE * SIZE * 3;
    const attributions = new Float32Array(pixels);
    for (let i = 0; i < pixels; i++) {
      let sum = 0;
      for (let k = 0; k < STEPS; k++) sum += stepWeights[k] * g[k * pixels + i];
      attributions[i] = x[i] * sum;
    }
    return { attributions, gates: gateValues, gateShapes };
  }

  /** Whether the gradient passes the gate: ReLU6's clip passes 0 ≤ z ≤ 6; the fused ReLU's mask is y > 0. */
  const passes = (gate: (typeof GATES)[number], v: number) => (gate === 'head' ? v > 0 : v >= 0 && v <= 6);

  /**
   * Input rows (or columns) a gate unit at row r reaches through the backward
   * pass. The stem (3×3, stride 2, 'same' at 48: no top padding) maps stem
   * rows lo…hi to input rows 2·lo…2·hi + 2; a depthwise unit spreads over
   * stem rows r − 1…r + 1 (3×3); a head unit over the 2×2 pool window, then
   * the depthwise 3×3 of the residual branch: stem rows 2r − 1…2r + 2.
   */
  function reach(gate: (typeof GATES)[number], r: number): [number, number] {
    const [lo, hi] = gate === 'stem_bn' ? [r, r] : gate === 'dw_bn' ? [r - 1, r + 1] : [2 * r - 1, 2 * r + 2];
    return [Math.max(0, 2 * lo), Math.min(SIZE - 1, 2 * hi + 2)];
  }

  let cpuRuns: Map<number, IgRun>;
  before(async () => {
    cpuRuns = new Map();
    for (const seed of IMAGE_SEEDS) cpuRuns.set(seed, await integratedGradients('cpu', seed));
  });

  async function compareWithCpu(t: { diagnostic(message: string): void }): Promise<void> {
    for (const seed of IMAGE_SEEDS) {
      const cpu = cpuRuns.get(seed)!;
      const wasm = await integratedGradients('wasm', seed);
      const excluded = new Uint8Array(SIZE * SIZE);
      const ties: string[] = [];
      GATES.forEach((gate, l) => {
        assertClose(wasm.gates[l], cpu.gates[l], `image ${seed}: ${gate} forward`, 1e-6);
        const [, h, w, c] = cpu.gateShapes[l];
        cpu.gates[l].forEach((v, i) => {
          if (passes(gate, v) === passes(gate, wasm.gates[l][i])) return;
          const r = Math.floor(i / (w * c)) % h;
          const q = Math.floor(i / c) % w;
          ties.push(`${gate} step ${Math.floor(i / (h * w * c))} (${r}, ${q}) channel ${i % c}: cpu ${v.toExponential(2)}, wasm ${wasm.gates[l][i].toExponential(2)}`);
          const [top, bottom] = reach(gate, r);
          const [left, right] = reach(gate, q);
          for (let y = top; y <= bottom; y++) excluded.fill(1, y * SIZE + left, y * SIZE + right + 1);
        });
      });
      assert.ok(ties.length <= 2, `image ${seed}: ${ties.length} gradient masks differ between cpu and wasm; ties within rounding are rare, so the forward pass must be off: ${ties.slice(0, 5).join('; ')}`);
      const scale = maxAbs(cpu.attributions);
      let worst = 0;
      let worstTied = 0;
      cpu.attributions.forEach((v, i) => {
        const error = Math.abs(wasm.attributions[i] - v) / scale;
        if (excluded[Math.floor(i / 3)]) worstTied = Math.max(worstTied, error);
        else worst = Math.max(worst, error);
      });
      assert.ok(worst <= 1e-6, `image ${seed}: attributions differ by ${worst.toExponential(2)} of their maximum outside the receptive fields of tied units (${ties.length} ties)`);
      if (ties.length) t.diagnostic(`image ${seed}: ${ties.join('; ')}; up to ${worstTied.toExponential(1)} of the maximum inside its reach, ≤ ${worst.toExponential(1)} elsewhere`);
    }
  }

  it("with wasm's own Conv2DBackpropInput", async (t) => {
    await usingWasmKernel('Conv2DBackpropInput', WASM_OWN_CONV2D_BACKPROP_INPUT, () => compareWithCpu(t));
  });

  it("with salgrid's faster Conv2DBackpropInput (what `salgrid explain --backend wasm` uses)", async (t) => {
    await usingWasmKernel('Conv2DBackpropInput', conv2dBackpropInput as tf.KernelFunc, () => compareWithCpu(t));
  });
});

/** Runs `body` with `kernelFunc` registered for wasm under `kernelName`, then restores what was registered. */
async function usingWasmKernel(kernelName: string, kernelFunc: tf.KernelFunc, body: () => Promise<void>): Promise<void> {
  const previous = tf.getKernel(kernelName, 'wasm');
  const swap = (func: tf.KernelFunc) => {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: func });
  };
  swap(kernelFunc);
  try {
    await body();
  } finally {
    if (previous) swap(previous.kernelFunc);
  }
}
