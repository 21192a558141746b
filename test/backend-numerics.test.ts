/**
 * One numerics suite for every backend present, against the cpu backend on
 * the same weights and inputs: forward, input gradient, gradient at an
 * intermediate layer, and one training step with SGD and with Adam, for a
 * small CNN and a MobileNetV2-shaped net at 64×64.
 *
 * Tolerances, each relative to the largest absolute reference value: logits
 * 1e-4; gradients 1e-3 (float32 sums in another order, through many layers);
 * the weight change of one SGD step 1e-3 of the step's largest change. Adam's first step moves every
 * weight by about ±lr·g/(|g|+ε), so float noise in a near-zero gradient can
 * flip a whole step: its weights are compared with ε = 1e-3, where the step
 * stays proportional to tiny gradients, likewise to 1e-3 of its largest change.
 *
 * The onnx engine is cross-checked on the same weights for what it runs
 * (forward and gradients; training stays on TensorFlow.js), same tolerances.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/core/tensor/backend.ts';
import { inputGradient, layerGradient } from '../src/core/tensor/gradients.ts';
import { OnnxEngine } from '../src/core/tensor/onnx-engine.ts';
import { seededRandom } from '../src/core/random.ts';
import { SMALL_V2_BLOCKS, makeNet, mobileNetV2, smallCnn, type Builder } from './nets.ts';

interface Case {
  name: string;
  build: Builder;
  size: number;
  layer: string;
}

const CASES: Case[] = [
  { name: 'small CNN', build: smallCnn, size: 64, layer: 'bn1' },
  { name: 'MobileNetV2-shaped', build: mobileNetV2(SMALL_V2_BLOCKS, 64, 4), size: 64, layer: 'block_2_add' },
];
const BATCH = 2;
const TARGET = [1, 3];

interface Results {
  logits: Float32Array;
  inputGrad: Float32Array;
  layerGrad: Float32Array;
  start: Float32Array[];
  sgd: Float32Array[];
  adam: Float32Array[];
}

const read = async (t: tf.Tensor) => (await t.data()) as Float32Array;

/** Everything the suite compares, computed on the active backend from the given weights and input. */
async function compute(spec: Case, weights: Float32Array[], input: Float32Array): Promise<Results> {
  const net = makeNet(spec.name.replace(/\W/g, '_'), [spec.size, spec.size, 3], spec.build);
  const setWeights = () => {
    const tensors = net.model.weights.map((w, i) => tf.tensor(weights[i], w.shape as number[]));
    net.model.setWeights(tensors);
    tf.dispose(tensors);
  };
  setWeights();
  const x = tf.tensor4d(input, [BATCH, spec.size, spec.size, 3]);
  const logits = await read(tf.tidy(() => net.model.predict(x) as tf.Tensor));
  const inputGrad = await read(tf.tidy(() => inputGradient(net.model, x, TARGET)));
  const layer = layerGradient(net.model, x, spec.layer, TARGET);
  const layerGrad = await read(layer.gradients);
  tf.dispose([layer.activations, layer.gradients]);
  const labels = tf.cast(tf.oneHot(tf.tensor1d(TARGET, 'int32'), (net.model.outputs[0].shape as number[])[1] as number), 'float32');
  // Dropout draws its masks from each backend's own random stream: off, the step is comparable.
  for (const layer of net.model.layers) if (layer.getClassName() === 'Dropout') (layer as unknown as { rate: number }).rate = 0;
  const step = async (optimizer: tf.Optimizer) => {
    setWeights();
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, net.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    const after = await Promise.all(net.model.weights.map((w) => read(w.read())));
    optimizer.dispose();
    return after;
  };
  const sgd = await step(tf.train.momentum(0.01, 0.9));
  const adam = await step(tf.train.adam(0.01, 0.9, 0.999, 1e-3));
  tf.dispose([x, labels]);
  net.model.dispose();
  return { logits, inputGrad, layerGrad, start: weights, sgd, adam };
}

function assertClose(actual: Float32Array, expected: Float32Array, tolerance: number, what: string, givenScale?: number): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = givenScale ?? 0;
  if (givenScale === undefined) for (const v of expected) scale = Math.max(scale, Math.abs(v));
  // The floor keeps float noise on values that are zero in exact arithmetic from failing a relative test.
  const limit = tolerance * Math.max(scale, 1e-6);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= limit, `${what}: largest difference ${worst.toExponential(2)} > ${limit.toExponential(2)}`);
}

const available: string[] = [];
const reference = new Map<string, { weights: Float32Array[]; input: Float32Array; results: Results }>();

before(async () => {
  for (const name of ['wasm', 'webgpu'] as const) {
    try {
      await initBackend(name, { allowSoftwareAdapter: true });
      available.push(name);
    } catch {
      // Not present on this machine: the suite covers the backends that are.
    }
  }
  await tf.setBackend('cpu');
  for (const spec of CASES) {
    const net = makeNet(`${spec.name.replace(/\W/g, '_')}_ref`, [spec.size, spec.size, 3], spec.build);
    const weights = await Promise.all(net.model.getWeights().map(read));
    net.model.dispose();
    const random = seededRandom(11);
    const input = Float32Array.from({ length: BATCH * spec.size * spec.size * 3 }, () => random() * 2 - 1);
    reference.set(spec.name, { weights, input, results: await compute(spec, weights, input) });
  }
});

describe('backend numerics against the cpu backend', () => {
  it('covers wasm here, and webgpu where a (software) Vulkan driver is installed', () => {
    assert.ok(available.includes('wasm'), 'the wasm backend must always be present');
  });

  for (const backend of ['wasm', 'webgpu']) {
    for (const spec of CASES) {
      it(`${backend}: ${spec.name} — forward, input gradient, layer gradient, SGD and Adam steps`, async (t) => {
        if (!available.includes(backend)) {
          t.skip(`${backend} is not present on this machine`);
          return;
        }
        const { weights, input, results: want } = reference.get(spec.name)!;
        await tf.setBackend(backend);
        try {
          const got = await compute(spec, weights, input);
          assertClose(got.logits, want.logits, 1e-4, 'logits');
          assertClose(got.inputGrad, want.inputGrad, 1e-3, 'input gradient');
          assertClose(got.layerGrad, want.layerGrad, 1e-3, `gradient at ${spec.layer}`);
          const change = (after: Float32Array[], i: number) => after[i].map((v, j) => v - want.start[i][j]);
          for (const [name, ours, theirs] of [['SGD', got.sgd, want.sgd], ['Adam', got.adam, want.adam]] as const) {
            // Relative to the step's largest change anywhere in the net: weights the step barely moves carry only float noise.
            const scale = Math.max(...theirs.map((_, i) => Math.max(...change(theirs, i).map(Math.abs))));
            ours.forEach((_, i) => assertClose(change(ours, i), change(theirs, i), 1e-3, `${name} step, change of weight ${i}`, scale));
          }
        } finally {
          await tf.setBackend('cpu');
        }
      });
    }
  }
});

describe('engine numerics: the onnx engine against the tfjs cpu backend on the same weights', () => {
  for (const spec of CASES) {
    it(`onnx:cpu: ${spec.name} — forward, input gradient, layer gradient`, async () => {
      const { weights, input, results: want } = reference.get(spec.name)!;
      await tf.setBackend('cpu');
      const net = makeNet(`${spec.name.replace(/\W/g, '_')}_onnx`, [spec.size, spec.size, 3], spec.build);
      const tensors = net.model.weights.map((w, i) => tf.tensor(weights[i], w.shape as number[]));
      net.model.setWeights(tensors);
      tf.dispose(tensors);
      const engine = new OnnxEngine(net.model, { device: 'cpu', threads: 1 });
      const x = tf.tensor4d(input, [BATCH, spec.size, spec.size, 3]);
      try {
        const logits = await engine.scores(x, { beforeSoftmax: false });
        assertClose(await read(logits), want.logits, 1e-4, 'logits');
        const both = await engine.gradients(x, TARGET, { layers: [spec.layer], input: true });
        assertClose(await read(both.input!), want.inputGrad, 1e-3, 'input gradient');
        assertClose(await read(both.layers[0].gradients), want.layerGrad, 1e-3, `gradient at ${spec.layer}`);
        tf.dispose([logits, both.input!, both.layers[0].activations, both.layers[0].gradients]);
      } finally {
        x.dispose();
        engine.dispose();
        net.model.dispose();
      }
    });
  }
});
