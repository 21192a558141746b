/**
 * Training on ONNX Runtime (onnx/training-graph.ts, onnx-trainer.ts) against
 * the tfjs trainer on tfjs's cpu backend, its reference: the same network,
 * weights and batches, a few steps of each optimizer, then every weight and
 * running statistic compared to 1e-4 of its largest value.
 *
 * The network is shallow and holds every op whose weight gradient the
 * built-in families need: a strided 'same' convolution, batch norm on batch
 * statistics (PyTorch's running update), ReLU6 and ReLU, depthwise
 * convolutions (of 8 channels, and of 16 at strides 1 and 2, which onnx:cpu
 * runs on ONNX Runtime's NCHWc kernels: nchwc-graph.ts), 1×1 convolutions (one strided; one with a bias and a fused
 * ReLU), a residual Add, zero padding and max pooling, average pooling,
 * concatenation, global pooling and the dense head. (A bias right before a
 * batch norm has no gradient in exact arithmetic, only rounding noise, so
 * the network has none there.) Deep networks at random initialisation are no
 * test of this: a pre-activation a few float32 ulps from a ReLU's kink
 * decides a whole gradient row there, and which side it lies on depends on
 * rounding (MobileNetV2 at 64×64 has one such value at features.18, which
 * tfjs and ONNX Runtime round to opposite signs; train-step.e2e.test.ts
 * shows the same in PyTorch's own golden cases). A shallow network keeps
 * every pre-activation far from its kink relative to float32's error.
 *
 * The same network also trains on onnx:webgpu (in CI on lavapipe), against
 * onnx:cpu; skipped, saying why, where ONNX Runtime finds no WebGPU adapter
 * (except under SALGRID_REQUIRE_WEBGPU=1, CI).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import builtins from '../src/plugins/index.ts';
import { seededRandom, withSeededMathRandom } from '../src/core/random.ts';
import { tryOnnxDevice } from '../src/core/tensor/onnx-devices.ts';
import { OnnxTrainer } from '../src/core/tensor/onnx-trainer.ts';
import { pytorchBatchNorm } from '../src/core/tensor/pytorch-batch-norm.ts';
import { TfjsTrainer } from '../src/core/tensor/tfjs-trainer.ts';
import { inversePermutation, permute } from '../src/core/tensor/permutation.ts';
import type { ResolvedOptimizer, StepOptions, Trainer } from '../src/core/tensor/trainer.ts';
import { backpropagate } from '../src/core/tensor/onnx/gradient.ts';
import type { Graph } from '../src/core/tensor/onnx/graph.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { GraphIndex } from '../src/core/tensor/onnx/graph-index.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { OnnxSession } from '../src/core/tensor/onnx/session.ts';
import { convAttributes, convOutputShape, type ConvCase } from './conv-cases.ts';
import { largestError } from './helpers.ts';

const REQUIRED = process.env.SALGRID_REQUIRE_WEBGPU === '1';
const webgpu = await tryOnnxDevice('webgpu', { allowSoftwareAdapter: true, explicit: false });
const NO_WEBGPU = webgpu.ok || REQUIRED ? false : `no WebGPU adapter for ONNX Runtime here (${webgpu.reason}); scripts/install-lavapipe.sh installs a software one`;

const CLASSES = 3;
const BATCH = 8;
const SIZE = 24;

/** The shallow network described above, seeded. */
function opsNet(): tf.LayersModel {
  return withSeededMathRandom(7, () => {
    const bn = (name: string) => pytorchBatchNorm({ axis: -1, epsilon: 1e-5, momentum: 0.9, name });
    const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
    const input = tf.input({ shape: [SIZE, SIZE, 3] });
    const stem = apply(tf.layers.reLU({ maxValue: 6 }), apply(bn('stem_bn'), apply(tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), input)));
    const depthwise = apply(tf.layers.reLU({ maxValue: 6 }), apply(bn('dw_bn'), apply(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }), stem)));
    const pointwise = apply(bn('pw_bn'), apply(tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false }), depthwise));
    const residual = apply(tf.layers.add(), [stem, pointwise]);
    const strided = apply(tf.layers.reLU(), apply(bn('down_bn'), apply(tf.layers.conv2d({ filters: 12, kernelSize: 1, strides: 2, useBias: false }), residual)));
    const pooled = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2 }), apply(tf.layers.zeroPadding2d({ padding: 1 }), strided));
    const averaged = apply(tf.layers.averagePooling2d({ poolSize: 4, strides: 4 }), residual);
    // Depthwise layers of 16 channels, at strides 1 and 2: on onnx:cpu these run on the NCHWc kernels (nchwc-graph.ts).
    const wide = apply(tf.layers.reLU({ maxValue: 6 }), apply(bn('wide_bn'), apply(tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false }), residual)));
    const wideDepthwise = apply(tf.layers.reLU({ maxValue: 6 }), apply(bn('wide_dw_bn'), apply(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }), wide)));
    const downDepthwise = apply(bn('down_dw_bn'), apply(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false }), wideDepthwise));
    const squeezed = apply(tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }), downDepthwise);
    const joined = apply(tf.layers.concatenate(), [pooled, averaged, squeezed]);
    const mixed = apply(tf.layers.conv2d({ filters: 10, kernelSize: 1, activation: 'relu' }), joined);
    const head = apply(tf.layers.dense({ units: CLASSES }), apply(tf.layers.globalAveragePooling2d({}), mixed));
    return tf.model({ inputs: input, outputs: head });
  });
}

function batchOf(seed: number): { x: tf.Tensor4D; labels: Int32Array } {
  const random = seededRandom(seed);
  const x = tf.tensor4d(Float32Array.from({ length: BATCH * SIZE * SIZE * 3 }, () => 2 * random() - 1), [BATCH, SIZE, SIZE, 3]);
  return { x, labels: Int32Array.from({ length: BATCH }, (_, i) => (i + seed) % CLASSES) };
}

const SGD: ResolvedOptimizer = { kind: 'sgd', learningRate: 0.05, momentum: 0.9, nesterov: true, beta1: 0, beta2: 0, epsilon: 0, weightDecay: 1e-3 };
// ε 1e-6 rather than PyTorch's 1e-8: a weight whose exact gradient is 0 (a batch norm's offset whose shift the next
// batch norm removes) gets rounding noise instead, which Adam's first steps would turn into ±lr on either engine.
const ADAM: ResolvedOptimizer = { kind: 'adam', learningRate: 0.01, momentum: 0, nesterov: false, beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 1e-3 };

/** Runs the steps (head-only or all, as listed) on a trainer; returns the loss before each. */
async function steps(trainer: Trainer, plan: readonly boolean[], learningRate: number, classWeights?: number[]): Promise<number[]> {
  const losses: number[] = [];
  for (const [i, headOnly] of plan.entries()) {
    const { x, labels } = batchOf(10 + i);
    const options: StepOptions = { headOnly, learningRate, seed: i, ...(classWeights ? { classWeights } : {}) };
    const measured = await trainer.step(x, labels, options);
    x.dispose();
    losses.push(measured.weightedSum / measured.weightSum);
  }
  trainer.syncModel();
  return losses;
}

function assertSameState(actual: tf.LayersModel, expected: tf.LayersModel, tolerance: number, what: string): void {
  const bad: string[] = [];
  expected.weights.forEach((weight, i) => {
    const { error, scale } = largestError(actual.weights[i].read().dataSync(), weight.read().dataSync());
    if (!(error <= tolerance * (scale || 1))) bad.push(`${weight.name} (${(error / (scale || 1)).toExponential(2)})`);
  });
  assert.deepEqual(bad, [], `${what}: tensors beyond ${tolerance} × their largest value`);
}

describe('training on ONNX Runtime matches the tfjs trainer (tfjs cpu)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [name, optimizer, plan, classWeights] of [
    ['SGD, Nesterov momentum, weight decay', SGD, [false, false, false], undefined],
    ['Adam, weight decay, class weights, a head-only step first', ADAM, [true, false, false], [1, 2, 0.5]],
  ] as const) {
    it(name, async () => {
      const reference = opsNet();
      const native = opsNet();
      const tfjsTrainer = new TfjsTrainer(reference, { ...optimizer });
      const onnxTrainer = new OnnxTrainer(native, { device: 'cpu', threads: 2, optimizer: { ...optimizer } });
      try {
        const weights = classWeights ? [...classWeights] : undefined;
        const expected = await steps(tfjsTrainer, plan, optimizer.learningRate, weights);
        const actual = await steps(onnxTrainer, plan, optimizer.learningRate, weights);
        actual.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]) <= 1e-5 * Math.abs(expected[i]), `loss before step ${i + 1}: ${loss} against tfjs's ${expected[i]}`));
        assertSameState(native, reference, 1e-4, name);
        assert.deepEqual(onnxTrainer.slotSteps(), tfjsTrainer.slotSteps(), 'optimizer steps per weight');
      } finally {
        await Promise.all([tfjsTrainer.dispose(), onnxTrainer.dispose()]);
        reference.dispose();
        native.dispose();
      }
    });
  }

  it('trains the same on onnx:webgpu as on onnx:cpu (SGD and Adam)', { skip: NO_WEBGPU }, async () => {
    for (const [optimizer, plan, classWeights] of [[SGD, [false, false], undefined], [ADAM, [true, false], [1, 2, 0.5]]] as const) {
      const onCpu = opsNet();
      const onGpu = opsNet();
      const cpuTrainer = new OnnxTrainer(onCpu, { device: 'cpu', threads: 2, optimizer: { ...optimizer } });
      const gpuTrainer = new OnnxTrainer(onGpu, { device: 'webgpu', threads: 2, optimizer: { ...optimizer } });
      try {
        const weights = classWeights ? [...classWeights] : undefined;
        const expected = await steps(cpuTrainer, plan, optimizer.learningRate, weights);
        const actual = await steps(gpuTrainer, plan, optimizer.learningRate, weights);
        actual.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]) <= 1e-5 * Math.abs(expected[i]), `${optimizer.kind}: loss before step ${i + 1}: ${loss} against onnx:cpu's ${expected[i]}`));
        assertSameState(onGpu, onCpu, 1e-4, `${optimizer.kind} on onnx:webgpu`);
      } finally {
        await Promise.all([cpuTrainer.dispose(), gpuTrainer.dispose()]);
        onCpu.dispose();
        onGpu.dispose();
      }
    }
  });

  it('the same steps twice give the same weights bit for bit (2 threads, the NCHWc kernels included)', async () => {
    const runOnce = async (): Promise<Float32Array[]> => {
      const model = opsNet();
      const trainer = new OnnxTrainer(model, { device: 'cpu', threads: 2, optimizer: { ...SGD } });
      try {
        await steps(trainer, [false, false], SGD.learningRate);
        return model.weights.map((w) => Float32Array.from(w.read().dataSync()));
      } finally {
        await trainer.dispose();
        model.dispose();
      }
    };
    const [first, second] = [await runOnce(), await runOnce()];
    first.forEach((values, i) => assert.deepEqual(second[i], values, `weight ${i}`));
  });

  it('a head-only step leaves every other weight as it was, bit for bit, and updates the running statistics', async () => {
    const model = opsNet();
    const before = model.weights.map((w) => Float32Array.from(w.read().dataSync()));
    const trainer = new OnnxTrainer(model, { device: 'cpu', threads: 2, optimizer: { ...ADAM } });
    try {
      await steps(trainer, [true], ADAM.learningRate);
      const head = new Set(model.layers.at(-1)!.trainableWeights.map((w) => w.name));
      model.weights.forEach((w, i) => {
        const after = w.read().dataSync();
        const changed = after.some((value, j) => value !== before[i][j]);
        const expected = head.has(w.name) || /moving_(mean|variance)/.test(w.name);
        assert.equal(changed, expected, `${w.name} ${changed ? 'changed' : 'did not change'}`);
      });
    } finally {
      await trainer.dispose();
      model.dispose();
    }
  });

  it('draws dropout masks from the step’s seed: the same seed gives the same weights, another seed others', async () => {
    interface Architecture { kind: string; id: string; build(params: Record<string, unknown>, classes: number, size: [number, number]): tf.LayersModel }
    const mobilenet = (builtins as unknown as Architecture[]).find((plugin) => plugin.kind === 'architecture' && plugin.id === 'mobilenet-v2')!;
    const run = async (seed: number): Promise<Float32Array> => {
      const model = withSeededMathRandom(7, () => mobilenet.build({ widthMult: 0.35 }, CLASSES, [32, 32]));
      const dropout = model.layers.find((layer) => layer.getClassName() === 'Dropout');
      assert.ok(dropout, 'mobilenet-v2 has a dropout before its head');
      (dropout as unknown as { rate: number }).rate = 0.5;
      const trainer = new OnnxTrainer(model, { device: 'cpu', threads: 2, optimizer: { ...SGD } });
      try {
        const random = seededRandom(1);
        const x = tf.tensor4d(Float32Array.from({ length: 4 * 32 * 32 * 3 }, () => random()), [4, 32, 32, 3]);
        await trainer.step(x, Int32Array.of(0, 1, 2, 0), { headOnly: false, learningRate: 0.1, seed });
        x.dispose();
        trainer.syncModel();
        return Float32Array.from(model.layers.at(-1)!.trainableWeights[0].read().dataSync());
      } finally {
        await trainer.dispose();
        model.dispose();
      }
    };
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    assert.deepEqual(b, a);
    assert.notDeepEqual(c, a);
  });
});

describe('weights held in the layout the graph reads them in', () => {
  it('permute transposes as tf.transpose does, and inversePermutation back', () => {
    for (const [shape, perm] of [[[3, 3, 4, 5], [3, 2, 0, 1]], [[3, 3, 6, 2], [2, 3, 0, 1]], [[7, 4], [1, 0]], [[2, 3, 4], [0, 1, 2]]] as Array<[number[], number[]]>) {
      const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i * 0.5 - 3);
      const expected = tf.tidy(() => tf.transpose(tf.tensor(values, [...shape]), [...perm]).dataSync() as Float32Array);
      const permuted = permute(values, shape, perm);
      assert.deepEqual(Array.from(permuted), Array.from(expected), `[${shape}] by [${perm}]`);
      assert.deepEqual(Array.from(permute(permuted, perm.map((axis) => shape[axis]), inversePermutation(perm))), Array.from(values), `[${shape}] by [${perm}] and back`);
    }
  });
});

describe('convolution weight gradients: what the CPU computes equals the swapped convolution GPUs run (onnx:cpu)', () => {
  const CASES: readonly ConvCase[] = [
    { name: 'per tap: 3×3, pads 1, a non-square input', input: [3, 5, 9, 7], outputs: 6, kernel: [3, 3], pads: [1, 1, 1, 1] },
    { name: 'per tap: 3×3 stride 2, TensorFlow’s “same” pads (0, 0, 1, 1)', input: [2, 4, 8, 8], outputs: 3, kernel: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1] },
    { name: 'per tap: 3×3 stride 2 pads 1 on 8×8 (the last padded row unread)', input: [2, 4, 8, 8], outputs: 5, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    { name: 'per tap: 7×7 stride 2 pads 3 from 3 channels (ResNet’s first layer)', input: [2, 3, 15, 15], outputs: 4, kernel: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3] },
    { name: 'per tap: 3×3 dilation 2 pads 2', input: [2, 3, 9, 9], outputs: 2, kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
    { name: 'per tap: 1×3, pads on the width only', input: [2, 3, 5, 6], outputs: 4, kernel: [1, 3], pads: [0, 1, 0, 1] },
    { name: 'per image and channel: depthwise 3×3 stride 2', input: [3, 4, 8, 8], outputs: 4, kernel: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1], group: 4 },
  ];
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

  /** ∂⟨dy, Conv(x, w)⟩/∂w as the gradient builder writes it for `device`. */
  function weightGradientGraph(c: ConvCase, device: 'cpu' | 'webgpu'): Graph {
    const group = c.group ?? 1;
    const forward = new GraphBuilder(c.name);
    const x = forward.addInput('x', c.input);
    const w = forward.addInput('w', [c.outputs ?? c.input[1], c.input[1] / group, ...c.kernel]);
    const yShape = convOutputShape(c);
    const y = forward.op('Conv', [x, w], 'y', yShape, convAttributes(c));
    forward.addOutput(y);
    const graph = forward.build();
    const builder = GraphBuilder.from(graph);
    builder.outputs = [];
    const dy = builder.addInput('dy', yShape);
    const { gradients } = backpropagate(builder, new GraphIndex(graph), { seeds: [[y, { value: dy }]], starts: new Set([w]), rule: 'plain', device });
    builder.addOutput(gradients.materialized(w));
    return builder.build();
  }

  for (const c of CASES) {
    it(c.name, async () => {
      const random = seededRandom(5);
      const values = (shape: readonly number[]) => ({ data: Float32Array.from({ length: size(shape) }, () => 2 * random() - 1), shape });
      const cpu = weightGradientGraph(c, 'cpu');
      const gpu = weightGradientGraph(c, 'webgpu');
      assert.notDeepEqual(cpu.nodes.map((node) => node.op), gpu.nodes.map((node) => node.op), 'the two devices’ formulations differ');
      const inputs = Object.fromEntries(cpu.inputs.map((info) => [info.name, values(info.shape)]));
      const run = async (graph: Graph) => {
        const session = await OnnxSession.create(serializeGraph(graph), { device: 'cpu', threads: 2 });
        try {
          return (await session.run(inputs, [graph.outputs[0].name]))[0].data;
        } finally {
          await session.release();
        }
      };
      const { error, scale } = largestError(await run(cpu), await run(gpu));
      assert.ok(scale > 0 && error <= 1e-5 * scale, `max |cpu − swapped| = ${error} against ${scale}`);
    });
  }
});
