import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { layersModelFiles } from '../src/core/io/layers-model-files.ts';
import { fileModelHandler, loadLayersModel, saveLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { ROOT, tempDir } from './helpers.ts';

const TINY_CNN = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');

function smallModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: 3, name: 'head' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'small' });
}

function batch(): tf.Tensor4D {
  return tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 42) as tf.Tensor4D;
}

function assertSamePredictions(a: tf.LayersModel, b: tf.LayersModel): void {
  const x = batch();
  const expected = (a.predict(x) as tf.Tensor).arraySync();
  const actual = (b.predict(x) as tf.Tensor).arraySync();
  assert.deepEqual(actual, expected);
}

async function rejectsWithUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(isUserError(error), `expected a UserError, got ${error.stack}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('model IO', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('saves model.json + weights.bin and loads a model that predicts the same', async () => {
    const dir = path.join(tempDir(), 'model');
    const model = smallModel();
    const result = await saveLayersModel(model, dir);
    assert.equal(result.modelArtifactsInfo.modelTopologyType, 'JSON');
    // Only the two standard files: the atomic writes left no temporaries.
    assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'weights.bin']);
    const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(json.format, 'layers-model');
    assert.deepEqual(json.weightsManifest[0].paths, ['weights.bin']);
    const weightBytes = model.weights.reduce((sum, w) => sum + w.shape.reduce((p: number, n) => p * (n ?? 1), 1) * 4, 0);
    assert.equal(readFileSync(path.join(dir, 'weights.bin')).length, weightBytes);

    assertSamePredictions(model, await loadLayersModel(dir));
    assertSamePredictions(model, await loadLayersModel(path.join(dir, 'model.json')));
  });

  it('writes the standard layout that the stock tfjs loader reads (tf.io.http over the saved files)', async () => {
    const dir = tempDir();
    const model = smallModel();
    await saveLayersModel(model, dir);
    // Serve the folder to tfjs's own browser loader, which knows nothing of our handler.
    const fetchFunc = async (url: string | URL | Request) => {
      const href = url instanceof Request ? url.url : String(url);
      return new Response(readFileSync(path.join(dir, new URL(href).pathname.slice('/models/'.length))));
    };
    const loaded = await tf.loadLayersModel(tf.io.http('http://salgrid.test/models/model.json', { fetchFunc }));
    assertSamePredictions(model, loaded);
  });

  it('keeps training config and optimizer weights when asked to', async () => {
    const dir = tempDir();
    const model = smallModel();
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    await model.fit(batch(), tf.ones([2, 3]), { epochs: 1, verbose: 0 });
    await saveLayersModel(model, dir, { includeOptimizer: true });
    const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(json.trainingConfig.loss, 'mean_squared_error');
    assert.ok(json.weightsManifest[0].weights.some((w: { group?: string }) => w.group === 'optimizer'));
    const loaded = await loadLayersModel(dir);
    assertSamePredictions(model, loaded);
    assert.equal(loaded.optimizer?.getClassName(), 'Adam');
  });

  it('loads a model whose weights are split over several shard files', async () => {
    const dir = tempDir();
    const model = smallModel();
    await saveLayersModel(model, dir);
    const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const weights = readFileSync(path.join(dir, 'weights.bin'));
    const cut = 64;
    writeFileSync(path.join(dir, 'group1-shard1of2.bin'), weights.subarray(0, cut));
    writeFileSync(path.join(dir, 'group1-shard2of2.bin'), weights.subarray(cut));
    rmSync(path.join(dir, 'weights.bin'));
    json.weightsManifest[0].paths = ['group1-shard1of2.bin', './group1-shard2of2.bin'];
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    assertSamePredictions(model, await loadLayersModel(dir));
    // What a cache key hashes: model.json and exactly the files it lists, in order.
    assert.deepEqual(layersModelFiles(dir), ['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin'].map((f) => path.join(dir, f)));
    rmSync(path.join(dir, 'group1-shard2of2.bin'));
    assert.throws(() => layersModelFiles(path.join(dir, 'model.json')), (error: Error) => isUserError(error) && /^Weights file listed in .*model\.json not found: .*group1-shard2of2\.bin \(/.test(error.message));
  });

  it('reproduces the golden tiny-cnn logits to 1e-4', async () => {
    const model = await loadLayersModel(TINY_CNN);
    const inputs = await readNpy(path.join(TINY_CNN, 'inputs.npy'));
    const cases = JSON.parse(readFileSync(path.join(TINY_CNN, 'cases.json'), 'utf8')) as { logits: number[][]; predicted: number[] };
    const logits = tf.tidy(() => (model.predict(tf.tensor(inputs.data, inputs.shape, 'float32')) as tf.Tensor).arraySync()) as number[][];
    assert.equal(logits.length, cases.logits.length);
    logits.forEach((row, i) => {
      row.forEach((value, j) => assert.ok(Math.abs(value - cases.logits[i][j]) <= 1e-4, `logit [${i}, ${j}]: ${value} vs ${cases.logits[i][j]}`));
      assert.equal(row.indexOf(Math.max(...row)), cases.predicted[i]);
    });
  });

  it('says which path holds no model.json', async () => {
    const dir = tempDir();
    await rejectsWithUserError(loadLayersModel(dir), new RegExp(`No model found: ${escape(path.join(dir, 'model.json'))} does not exist`));
    await rejectsWithUserError(loadLayersModel(path.join(dir, 'elsewhere.json')), /elsewhere\.json does not exist/);
  });

  it('names a missing or truncated weights file and a model.json that is not one', async () => {
    const dir = tempDir();
    copyFileSync(path.join(TINY_CNN, 'model.json'), path.join(dir, 'model.json'));
    await rejectsWithUserError(fileModelHandler(dir).load!(), new RegExp(`Weights file ${escape(path.join(dir, 'weights.bin'))} listed in .*model\\.json does not exist`));
    writeFileSync(path.join(dir, 'weights.bin'), readFileSync(path.join(TINY_CNN, 'weights.bin')).subarray(0, 1000));
    await rejectsWithUserError(loadLayersModel(dir), /hold 1000 bytes but its weightsManifest describes 24848/);
    writeFileSync(path.join(dir, 'model.json'), '{"not": "a model"}');
    await rejectsWithUserError(loadLayersModel(dir), /is not a TensorFlow\.js model/);
    writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": ');
    await rejectsWithUserError(loadLayersModel(dir), /model\.json is not valid JSON/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
