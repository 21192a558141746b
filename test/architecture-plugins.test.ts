/**
 * The architecture plugins as the engine and explainers see them: ids and
 * presets, seeded construction, head replacement for transfer learning,
 * model cards and CAM layers, the weights store and torchvision's legacy
 * DenseNet key names.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import builtins from '../src/plugins/index.ts';
import type { ArchitecturePlugin, DatasetItem, FoldData, TrainingConfig } from '../src/core/plugins/types.ts';
import { writeFileAtomic } from '../src/core/store/atomic.ts';
import { encodePng } from '../src/core/io/image-io.ts';
import { withSeededMathRandom } from '../src/core/random.ts';
import { isTfjsArchitecture, saveModelWithCard, transferWeights, type TfjsArchitecture } from '../src/core/tensor/tfjs-architecture.ts';
import { readStateDict } from '../src/core/io/pytorch-state-dict.ts';
import { withModernDenseNetKeys } from '../src/plugins/architectures/densenet-model.ts';
import { ROOT, tempDir } from './helpers.ts';

const architectures = new Map(builtins.filter((p): p is ArchitecturePlugin => p.kind === 'architecture').map((p) => [p.id, p]));
const arch = (id: string): TfjsArchitecture => {
  const plugin = architectures.get(id);
  assert.ok(plugin && isTfjsArchitecture(plugin), `${id} is not a tfjs architecture`);
  return plugin as TfjsArchitecture;
};
const training = (pretrained: string): TrainingConfig => ({ epochs: 1, batchSize: 1, seed: 1, optimizer: {}, pretrained });

describe('architecture plugins', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('registers the families and their presets', () => {
    const ids = [...architectures.keys()].sort();
    for (const id of ['small-cnn', 'mobilenet-v2', 'googlenet', 'resnet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'densenet', 'densenet121', 'densenet161', 'densenet169', 'densenet201']) {
      assert.ok(ids.includes(id), `${id} is not registered`);
    }
  });

  it('bare resnet and densenet are the study’s depths; custom sizes are no preset', () => {
    assert.deepEqual(arch('resnet').resolve({}, 'none'), { depth: 101, block: 'bottleneck', layers: [3, 4, 23, 3], widthPerGroup: 64, groups: 1 });
    assert.equal(arch('resnet18').resolve({}, 'none').depth, 18);
    assert.equal(arch('resnet').resolve({ layers: [1, 1, 1, 1] }, 'none').depth, null);
    assert.deepEqual(arch('densenet').resolve({}, 'none'), { depth: 201, growthRate: 32, blockConfig: [6, 12, 48, 32], initFeatures: 64, bnSize: 4 });
    assert.equal(arch('densenet').resolve({ growthRate: 12, blockConfig: [2, 2], initFeatures: 24 }, 'none').depth, null);
    // GoogLeNet's transform_input follows the weights: on with pretrained weights, off for a fresh model.
    assert.equal(arch('googlenet').resolve({}, 'imagenet').transformInput, true);
    assert.equal(arch('googlenet').resolve({}, 'none').transformInput, false);
    assert.equal(arch('googlenet').resolve({ transformInput: false }, 'imagenet').transformInput, false);
  });

  it('builds the same weights from the same seed, and other weights from another', () => {
    const spec = arch('small-cnn');
    const build = (seed: number) => withSeededMathRandom(seed, () => buildFrom(spec));
    const [a, b, c] = [build(1), build(1), build(2)];
    const values = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    assert.deepEqual(values(a), values(b));
    assert.notDeepEqual(values(a), values(c));
    for (const m of [a, b, c]) m.dispose();
  });

  it('transfer learning keeps every body weight and gives the head fresh weights of the dataset’s size', () => {
    const source = withSeededMathRandom(1, () => buildFrom(arch('small-cnn'), 10));
    const target = withSeededMathRandom(2, () => buildFrom(arch('small-cnn'), 3));
    const headBefore = Array.from(target.getLayer('fc').getWeights()[0].dataSync());
    transferWeights(source, target, 'fc', 'in the test');
    for (const layer of target.layers) {
      if (layer.name === 'fc' || layer.weights.length === 0) continue;
      const from = source.getLayer(layer.name).getWeights();
      layer.getWeights().forEach((w, i) => assert.deepEqual(Array.from(w.dataSync()), Array.from(from[i].dataSync()), layer.name));
    }
    assert.deepEqual(Array.from(target.getLayer('fc').getWeights()[0].dataSync()), headBefore);
    assert.deepEqual(target.outputs[0].shape, [null, 3]);
    source.dispose();
    target.dispose();
  });

  it('transfer from another configuration fails without touching the model', () => {
    const source = buildFrom(arch('small-cnn'), 4, { width: 8 });
    const target = buildFrom(arch('small-cnn'), 4);
    const before = target.getWeights().map((w) => Array.from(w.dataSync()));
    assert.throws(() => transferWeights(source, target, 'fc', 'in x.pth'), /in x\.pth do not fit layer features_0_conv: \[3×3×3×8\] there, \[3×3×3×16\] here/);
    assert.deepEqual(target.getWeights().map((w) => Array.from(w.dataSync())), before);
    source.dispose();
    target.dispose();
  });

  it('loads a saved model with its card: preprocessing, classes and the CAM layers (DenseNet: activation after norm5’s ReLU, gradient before)', async () => {
    const densenet = arch('densenet');
    const params = densenet.resolve({ growthRate: 12, blockConfig: [2, 3, 2, 2], initFeatures: 24 }, 'file');
    const file = path.join(ROOT, 'test/fixtures/golden/torchvision/densenet/state_dict.pth');
    const { model, card } = await densenet.importPyTorch(file, params, { inputSize: [64, 64], classes: ['AD', 'CG', 'PS', 'ST'] });
    const dir = tempDir('salgrid-model-');
    await saveModelWithCard(model, card, dir);
    model.dispose();
    const loaded = await densenet.load(dir);
    assert.deepEqual(loaded.classes, ['AD', 'CG', 'PS', 'ST']);
    assert.deepEqual(loaded.preprocessing.size, [64, 64]);
    assert.deepEqual(loaded.target, { module: 'features.norm5', gradient: 'features_norm5', activation: 'features_norm5_relu' });
    // Elsewhere hooks see one tensor: the module's output layer (denseblock4 → its last concatenation).
    const block4 = loaded.camLayers('features.denseblock4');
    assert.equal(block4.gradient, block4.activation);
    assert.match(block4.gradient, /^features_denseblock4_/);
    assert.throws(() => loaded.camLayers('layer4'), /DenseNet has no module layer4; .*features\.norm5/);
    assert.ok(loaded.convLayers.length > 0 && loaded.convLayers.every((name) => loaded.model.getLayer(name).getClassName() === 'Conv2D'));
    loaded.engine.dispose();
    loaded.model.dispose();
  });

  it('pretrained: imagenet reads the weights store, and says how to fill it when empty', () => {
    const store = tempDir('salgrid-weights-');
    const saved = process.env.SALGRID_WEIGHTS;
    process.env.SALGRID_WEIGHTS = store;
    try {
      const mobilenet = arch('mobilenet-v2');
      assert.throws(() => mobilenet.trainingFiles({}, training('imagenet'), '/x'), (error: Error) => {
        assert.match(error.message, /mobilenet_v2-b0353104\.pth/);
        assert.match(error.message, /salgrid weights import mobilenet-v2 mobilenet_v2-b0353104\.pth --as mobilenet-v2-imagenet/);
        return true;
      });
      assert.throws(() => mobilenet.trainingFiles({ widthMult: 0.5 }, training('imagenet'), '/x'), /no ImageNet weights from torchvision/);
      const entry = path.join(store, 'mobilenet-v2-imagenet');
      mkdirSync(entry);
      writeFileSync(path.join(entry, 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }));
      writeFileSync(path.join(entry, 'weights.bin'), '');
      assert.deepEqual(mobilenet.trainingFiles({}, training('imagenet'), '/x'), [path.join(entry, 'model.json'), path.join(entry, 'weights.bin')]);
      assert.deepEqual(mobilenet.trainingFiles({}, training('none'), '/x'), []);
    } finally {
      if (saved === undefined) delete process.env.SALGRID_WEIGHTS;
      else process.env.SALGRID_WEIGHTS = saved;
    }
  });

  it('trains and predicts in process without leaking tensors, and a finished staging folder is not trained again', async () => {
    const dir = tempDir('salgrid-train-');
    const items = await writeImages(dir, 12);
    const data: FoldData = { fold: 1, classes: ['dark', 'bright'], train: items.slice(0, 8), val: items.slice(8, 10), test: items.slice(10), resolve: (f) => f, imageSize: [16, 16] };
    const out = path.join(dir, 'out');
    mkdirSync(out);
    const ctx = {
      params: { width: 4, blocks: 2 },
      out,
      manifestDir: dir,
      progress: () => {},
      warn: () => {},
      signal: new AbortController().signal,
      writeFile: (relative: string, content: string | Uint8Array) => writeFileAtomic(path.join(out, relative), content),
      data,
      training: { ...training('none'), epochs: 3, batchSize: 4, optimizer: { adam: { learningRate: 0.01 } }, augment: { flip: 'horizontal' } },
    };
    const before = tf.memory().numTensors;
    await arch('small-cnn').train(ctx);
    const predictions = await arch('small-cnn').predict({ ...ctx, modelDir: out });
    assert.equal(tf.memory().numTensors, before, 'train + predict leak tensors');
    assert.deepEqual(predictions.map((p) => p.id), ['10', '11']);
    for (const p of predictions) assert.ok(Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    const weights = readFileSync(path.join(out, 'model/weights.bin'));
    await arch('small-cnn').train(ctx);
    assert.ok(readFileSync(path.join(out, 'model/weights.bin')).equals(weights));
  });

  it('reads torchvision’s legacy DenseNet key names (norm.1 → norm1) as torchvision does', async () => {
    const state = await readStateDict(path.join(ROOT, 'test/fixtures/golden/torchvision/densenet/state_dict.pth'));
    assert.equal(withModernDenseNetKeys(state), state, 'modern names pass through untouched');
    const legacy = Object.assign(
      new Map([...state].map(([name, tensor]) => [name.replace(/(denselayer\d+\.(?:norm|conv))([12])\./, '$1.$2.'), tensor])),
      { names: state.names.map((name) => name.replace(/(denselayer\d+\.(?:norm|conv))([12])\./, '$1.$2.')) },
    );
    assert.ok(legacy.names.includes('features.denseblock1.denselayer1.norm.1.weight'));
    const modern = withModernDenseNetKeys(legacy);
    assert.deepEqual([...modern.names], [...state.names]);
    assert.equal(modern.get('features.denseblock1.denselayer1.norm1.weight'), state.get('features.denseblock1.denselayer1.norm1.weight'));
  });
});

/** Gray 16×16 PNGs, dark for even ids and bright for odd ones. */
async function writeImages(dir: string, count: number): Promise<DatasetItem[]> {
  const items: DatasetItem[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `${i}.png`);
    const data = Uint8Array.from({ length: 256 }, (_, p) => (i % 2 ? 180 : 40) + ((p * 7 + i) % 30));
    writeFileSync(file, await encodePng({ width: 16, height: 16, channels: 1, data }));
    items.push({ id: String(i), label: i % 2, image: file });
  }
  return items;
}

function buildFrom(spec: TfjsArchitecture, classes = 4, params: Record<string, number> = {}): tf.LayersModel {
  return spec.build(params, classes, [32, 32]);
}
