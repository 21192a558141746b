import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../src/core/random.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import type { EngineChoice } from '../src/core/tensor/engine-choice.ts';
import { trainModel, stepLearningRate, type TrainLoopConfig, type TrainModelOptions } from '../src/core/tensor/train-loop.ts';
import { tempDir } from './helpers.ts';

const SIZE = 16;
const CLASSES = 3;

/** Horizontal stripes, vertical stripes, or plain noise: stays learnable under flips and small rotations. */
function synthetic(count: number, seed: number): { x: tf.Tensor4D; y: number[] } {
  const random = seededRandom(seed);
  const values = new Float32Array(count * SIZE * SIZE);
  const y: number[] = [];
  for (let n = 0; n < count; n++) {
    const label = n % CLASSES;
    y.push(label);
    const phase = Math.floor(random() * 4);
    for (let r = 0; r < SIZE; r++) {
      for (let c = 0; c < SIZE; c++) {
        const stripe = label === 0 ? ((r + phase) >> 1) % 2 : label === 1 ? ((c + phase) >> 1) % 2 : 0.5;
        values[(n * SIZE + r) * SIZE + c] = stripe + 0.6 * (random() - 0.5);
      }
    }
  }
  return { x: tf.tensor4d(values, [count, SIZE, SIZE, 1]), y };
}

/** `dropout` adds an unseeded Dropout layer, whose masks tfjs draws from Math.random. */
function tinyCnn(dropout = false, seed = 3): tf.LayersModel {
  const init = (offset: number) => tf.initializers.glorotUniform({ seed: seed + offset });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: init(0) }),
      tf.layers.batchNormalization(),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 4 }),
      tf.layers.flatten(),
      ...(dropout ? [tf.layers.dropout({ rate: 0.3 })] : []),
      tf.layers.dense({ units: CLASSES, kernelInitializer: init(1) }),
    ],
  });
}

const SGD: TrainLoopConfig = {
  epochs: 4,
  batchSize: 8,
  seed: 11,
  optimizer: { sgd: { learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 } },
  schedule: { stepLR: { stepSize: 2, gamma: 0.5 } },
  augment: { rotate: 10, flip: 'both' },
};
const ADAM: TrainLoopConfig = { ...SGD, optimizer: { adam: { learningRate: 0.01, weightDecay: 1e-4 } }, freezeEpochs: 1, classWeights: true };

const weightsOf = (model: tf.LayersModel) => model.getWeights().map((w) => w.dataSync() as Float32Array);

function assertSameWeights(a: tf.LayersModel, b: tf.LayersModel): void {
  const wa = weightsOf(a);
  const wb = weightsOf(b);
  assert.equal(wa.length, wb.length);
  wa.forEach((values, i) => assert.deepEqual(wb[i], values, `weight ${i} differs`));
}

/** The loop runs the same on both engines: tfjs's variables, or ONNX Runtime's sessions (onnx-trainer.ts). */
const ENGINES: ReadonlyArray<[string, EngineChoice]> = [
  ['tfjs cpu', { engine: 'tfjs' }],
  ['onnx:cpu', { engine: 'onnx', device: 'cpu', threads: 2 }],
];

for (const [engineName, engine] of ENGINES) describe(`train loop (${engineName})`, () => {
  let train: { x: tf.Tensor4D; y: number[] };
  let val: { x: tf.Tensor4D; y: number[] };

  before(async () => {
    await tf.setBackend('cpu');
    train = synthetic(64, 1);
    val = synthetic(24, 2);
  });

  const options = (model: tf.LayersModel, config: TrainLoopConfig, out: string, extra: Partial<TrainModelOptions> = {}): TrainModelOptions => ({
    model,
    train,
    val,
    config,
    out,
    engine,
    ...extra,
  });

  it('learns: loss falls, accuracy rises, history follows StepLR', async () => {
    const model = tinyCnn();
    const config = { ...SGD, epochs: 6, augment: undefined };
    const result = await trainModel(options(model, config, tempDir()));
    assert.equal(result.history.length, 6);
    const first = result.history[0];
    const last = result.history.at(-1)!;
    assert.ok(last.trainLoss < first.trainLoss, `${last.trainLoss} < ${first.trainLoss}`);
    assert.ok(last.trainAccuracy > first.trainAccuracy || last.trainAccuracy === 1);
    assert.ok(Math.max(...result.history.map((h) => h.valAccuracy!)) >= 0.9, JSON.stringify(result.history));
    assert.deepEqual(
      result.history.map((h) => h.learningRate),
      [0, 1, 2, 3, 4, 5].map((e) => 0.05 * 0.5 ** Math.floor(e / 2)),
    );
    assert.equal(stepLearningRate(0.1, 7, { stepLR: { stepSize: 3, gamma: 0.1 } }), 0.1 * 0.1 ** 2);
  });

  for (const [name, config, dropout] of [
    ['SGD with Nesterov momentum', SGD, false],
    ['Adam with freezeEpochs, class weights and dropout', ADAM, true],
  ] as const) {
    it(`resumes bit for bit (${name}, augmentation on)`, async () => {
      const tinyCnnUnderTest = () => tinyCnn(dropout);
      const a = tinyCnnUnderTest();
      const resultA = await trainModel(options(a, config, tempDir()));

      const outB = tempDir();
      const b1 = tinyCnnUnderTest();
      await trainModel(options(b1, { ...config, epochs: 2 }, outB));
      // A fresh model object, as a new process would build, resumes from the checkpoint.
      const b2 = tinyCnnUnderTest();
      const resultB = await trainModel(options(b2, config, outB));
      assert.equal(resultB.resumedFrom, 2);
      assert.equal(resultB.epochsRun, 2);
      assert.equal(resultB.bestEpoch, resultA.bestEpoch);
      assert.deepEqual(
        resultB.history.map(({ seconds: _, ...rest }) => rest),
        resultA.history.map(({ seconds: _, ...rest }) => rest),
      );
      assertSameWeights(a, b2);
      b1.dispose();
    });
  }

  it('trains only the last Dense layer during freezeEpochs', async () => {
    const model = tinyCnn();
    const initial = weightsOf(model);
    await trainModel(options(model, { ...ADAM, epochs: 1 }, tempDir()));
    const after = weightsOf(model);
    assert.deepEqual(after[0], initial[0], 'conv kernel frozen');
    assert.deepEqual(after[1], initial[1], 'conv bias frozen');
    assert.notDeepEqual(after.at(-2), initial.at(-2), 'dense kernel trained');
  });

  it('keeps the weights of the best validation epoch', async () => {
    const out = tempDir();
    const model = tinyCnn();
    // Validation labels shifted by one class: the better the model learns, the worse it validates, so an early epoch is best.
    const config: TrainLoopConfig = { ...SGD, epochs: 5, augment: undefined };
    const misleading = { x: val.x, y: val.y.map((label) => (label + 1) % CLASSES) };
    const perEpoch: Float32Array[][] = [];
    const result = await trainModel(options(model, config, out, { val: misleading, onEpoch: () => perEpoch.push(weightsOf(model)) }));
    const losses = result.history.map((h) => h.valLoss!);
    const expected = losses.indexOf(Math.min(...losses)) + 1;
    assert.equal(result.bestEpoch, expected);
    assert.notEqual(expected, 5, `the setting should make a non-final epoch best: ${losses}`);
    weightsOf(model).forEach((values, i) => assert.deepEqual(values, perEpoch[expected - 1][i]));
    const saved = await loadLayersModel(path.join(out, 'best'));
    weightsOf(saved).forEach((values, i) => assert.deepEqual(values, perEpoch[expected - 1][i]));
    saved.dispose();
    assert.ok(existsSync(path.join(out, 'history.json')));
  });

  it('leaks no tensors across epochs', async () => {
    const model = tinyCnn();
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    await trainModel(options(model, { ...ADAM, epochs: 4 }, tempDir(), { onEpoch: () => counts.push(tf.memory().numTensors) }));
    // Epoch 1 trains the head alone (freezeEpochs), so the body's Adam moments first appear in epoch 2.
    assert.equal(new Set(counts.slice(1)).size, 1, `numTensors per epoch: ${counts}`);
    assert.equal(tf.memory().numTensors, before, 'optimizer state is released at the end');
  });

  it('stops on abort after the epoch’s checkpoint, and resumes from it', async () => {
    const config = { ...SGD, epochs: 3 };
    const reference = tinyCnn();
    await trainModel(options(reference, config, tempDir()));

    const out = tempDir();
    const controller = new AbortController();
    const reason = new Error('stop requested');
    const first = tinyCnn();
    await assert.rejects(
      trainModel(options(first, config, out, { signal: controller.signal, onEpoch: (r) => r.epoch === 1 && controller.abort(reason) })),
      (error) => error === reason,
    );
    assert.deepEqual(readdirSync(path.join(out, 'checkpoints')).sort(), ['best-epoch-0001.bin', 'epoch-0001.bin']);

    // An abort between batches throws at once and leaves the epoch-1 checkpoint untouched.
    const midway = new AbortController();
    await assert.rejects(
      trainModel(options(tinyCnn(), config, out, { signal: midway.signal, progress: (done) => done === 11 && midway.abort(reason) })),
      (error) => error === reason,
    );
    assert.deepEqual(readdirSync(path.join(out, 'checkpoints')).sort(), ['best-epoch-0001.bin', 'epoch-0001.bin']);
    assert.equal(JSON.parse(readFileSync(path.join(out, 'checkpoint.json'), 'utf8')).epoch, 1);
    const resumed = tinyCnn();
    const result = await trainModel(options(resumed, config, out));
    assert.equal(result.resumedFrom, 1);
    assertSameWeights(reference, resumed);
  });
});
