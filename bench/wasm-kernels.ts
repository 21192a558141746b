/**
 * One Adam training step of five 3×3 stride-2 convolutions (32-64-128-128-256
 * filters, ReLU), global average pooling and a dense head, at 224×224: on
 * the wasm backend with salgrid's training kernels, against the cpu backend
 * in the same run. Also times each layer's filter gradient three ways on wasm:
 * salgrid's kernel, the unit-depth Conv3DBackpropFilterV2 route (fast but
 * wrong above stride 1: its error is printed) and, for scale, the forward
 * convolution.
 *
 * The cpu backend needs minutes per step at batch 8, so it runs at a smaller
 * batch (--cpu-batch, default 1) and wasm runs at that batch too for the
 * ratio; wasm's batch-8 step is timed as well. Finally the wasm step is timed
 * again with the opt-in faster Conv2DBackpropInput.
 *
 * Run: node --import tsx bench/wasm-kernels.ts [--batch 8] [--cpu-batch 1] [--steps 3] [--skip-cpu]
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from '../src/core/tensor/wasm-kernels/index.ts';
import { initWasmBackend } from '../src/core/tensor/wasm-setup.ts';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const BATCH = option('batch', 8);
const CPU_BATCH = option('cpu-batch', 1);
const STEPS = option('steps', 3);
const SKIP_CPU = process.argv.includes('--skip-cpu');
const SIZE = 224;
const FILTERS = [32, 64, 128, 128, 256];
const CLASSES = 10;

function buildModel(): tf.LayersModel {
  const model = tf.sequential();
  FILTERS.forEach((filters, i) => {
    model.add(tf.layers.conv2d({ ...(i === 0 ? { inputShape: [SIZE, SIZE, 3] } : {}), filters, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  });
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: CLASSES }));
  return model;
}

/** Median seconds per Adam step (after one untimed step that creates the optimizer's slots). */
async function timeTrainingStep(backend: string, batch: number, steps: number): Promise<number> {
  await tf.setBackend(backend);
  const model = buildModel();
  const optimizer = tf.train.adam(1e-3);
  const xs = tf.randomNormal([batch, SIZE, SIZE, 3], 0, 1, 'float32', 1);
  const ys = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % CLASSES), 'int32'), CLASSES);
  const step = async () => {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar, true)!;
    await loss.data();
    loss.dispose();
  };
  await step();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    await step();
    times.push((performance.now() - start) / 1000);
  }
  tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

async function medianMs(fn: () => tf.Tensor, runs = 3): Promise<number> {
  const warm = fn();
  await warm.data();
  warm.dispose();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const out = fn();
    await out.data();
    times.push(performance.now() - start);
    out.dispose();
  }
  times.sort((a, b) => a - b);
  return times[runs >> 1];
}

async function filterGradientTable(): Promise<void> {
  await tf.setBackend('wasm');
  console.log(`\nfilter gradient per layer on wasm, batch ${BATCH} (ms, median of 3):`);
  console.log('layer                          forward   salgrid   Conv3D route   Conv3D route error');
  let size = SIZE;
  let channels = 3;
  for (const filters of FILTERS) {
    const out = size / 2;
    const x = tf.randomNormal([BATCH, size, size, channels], 0, 1, 'float32', 2) as tf.Tensor4D;
    const dy = tf.randomNormal([BATCH, out, out, filters], 0, 1, 'float32', 3) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, channels, filters], 0, 1, 'float32', 4) as tf.Tensor4D;
    const ours = () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, channels, filters] }) as tf.Tensor;
    const conv3d = () => tf.tidy(() => tf.reshape(tf.engine().runKernel('Conv3DBackpropFilterV2',
      { x: tf.reshape(x, [BATCH, 1, size, size, channels]), dy: tf.reshape(dy, [BATCH, 1, out, out, filters]) },
      { strides: [1, 2, 2], pad: 'same', filterShape: [1, 3, 3, channels, filters] }) as tf.Tensor, [3, 3, channels, filters]));
    const forward = () => tf.conv2d(x, w, 2, 'same');
    const a = ours();
    const b = conv3d();
    const error = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(a)).dataSync()[0]);
    tf.dispose([a, b]);
    const label = `x[${BATCH},${size},${size},${channels}] → ${filters}`.padEnd(30);
    console.log(`${label} ${(await medianMs(forward)).toFixed(0).padStart(7)}   ${(await medianMs(ours)).toFixed(0).padStart(7)}   ${(await medianMs(conv3d)).toFixed(0).padStart(12)}   ${error.toExponential(1).padStart(18)}`);
    tf.dispose([x, dy, w]);
    size = out;
    channels = filters;
  }
}

const info = await initWasmBackend();
console.log(`wasm backend: SIMD ${info.simd}, ${info.threads} thread(s); Node ${process.version}`);
console.log(`model: five 3×3 stride-2 convs (${FILTERS.join('-')}), GAP, dense ${CLASSES}; Adam; input ${SIZE}×${SIZE}`);

const wasmFull = await timeTrainingStep('wasm', BATCH, STEPS);
console.log(`wasm, batch ${BATCH}: ${wasmFull.toFixed(2)} s per training step (median of ${STEPS})`);
if (!SKIP_CPU) {
  const wasmSmall = CPU_BATCH === BATCH ? wasmFull : await timeTrainingStep('wasm', CPU_BATCH, STEPS);
  if (CPU_BATCH !== BATCH) console.log(`wasm, batch ${CPU_BATCH}: ${wasmSmall.toFixed(2)} s per training step (median of ${STEPS})`);
  const cpu = await timeTrainingStep('cpu', CPU_BATCH, 1);
  console.log(`cpu,  batch ${CPU_BATCH}: ${cpu.toFixed(2)} s per training step (1 timed step)`);
  console.log(`wasm is ${(cpu / wasmSmall).toFixed(1)}× faster than cpu at batch ${CPU_BATCH} (same run)`);
}
await filterGradientTable();

registerWasmTrainingKernels({ fastConv2DBackpropInput: true });
const wasmFast = await timeTrainingStep('wasm', BATCH, STEPS);
console.log(`\nwith the opt-in faster Conv2DBackpropInput: wasm, batch ${BATCH}: ${wasmFast.toFixed(2)} s per training step (${(wasmFull / wasmFast).toFixed(1)}× the default wasm step)`);
if (!SKIP_CPU) {
  const wasmFastSmall = CPU_BATCH === BATCH ? wasmFast : await timeTrainingStep('wasm', CPU_BATCH, STEPS);
  console.log(`with the opt-in faster Conv2DBackpropInput: wasm, batch ${CPU_BATCH}: ${wasmFastSmall.toFixed(2)} s per training step`);
}
