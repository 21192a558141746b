/**
 * The CAM explainers against pytorch-grad-cam 1.5.5 (the goldens of
 * ../shared/golden, copied into test/fixtures/golden): every tiny-cnn case of
 * cases.json on cpu and on wasm, with the golden README's tolerances, and
 * Grad-CAM at each torchvision family's default layer through its
 * architecture plugin (import, save with card, load).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import type { LoadedModel, TfjsLoadedModel } from '../src/core/plugins/types.ts';
import { classScores, forwardFromLayer, layerGradient, layerGradients } from '../src/core/tensor/gradients.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { bareLoadedModel } from '../src/core/tensor/tensor-explainer.ts';
import { isTfjsArchitecture, saveModelWithCard, type TfjsArchitecture } from '../src/core/tensor/tfjs-architecture.ts';
import builtins from '../src/plugins/index.ts';
import type { CamExplainer } from '../src/plugins/explainers/cam/cam-base.ts';
import { ROOT, tempDir } from './helpers.ts';
import { useEngine, type EngineSetting } from './engines.ts';
import { stateDictLoader } from './torchvision-golden.ts';

const TINY = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const TORCHVISION = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision');
/** The tfjs backends, or ONNX Runtime devices (`onnx:cpu`), the goldens are checked on. */
const BACKENDS: readonly EngineSetting[] = ['cpu', 'wasm', 'onnx:cpu'];
const CAM_IDS = ['gradcam', 'hirescam', 'gradcam++', 'xgradcam', 'layercam', 'gradcam-elementwise', 'eigencam', 'eigengradcam', 'scorecam', 'ablationcam', 'fullgrad'];

interface GoldenCase {
  library: string;
  method?: string;
  target?: 'predicted' | 'explicit';
  eigen_smooth?: boolean;
  aug_smooth?: boolean;
  target_layer?: string | null;
  file: string;
  shape: number[];
}
interface GoldenCases {
  target_layer: string;
  predicted: number[];
  explicit_targets: number[];
  cases: GoldenCase[];
}

const golden = JSON.parse(readFileSync(path.join(TINY, 'cases.json'), 'utf8')) as GoldenCases;
// Metric cases (no method) belong to the metrics' tests.
const camCases = golden.cases.filter((c) => c.library === 'pytorch-grad-cam' && c.method !== undefined);
const caseFiles = new Set(camCases.map((c) => c.file));

const explainer = (id: string): CamExplainer => {
  const plugin = builtins.find((p) => p.kind === 'explainer' && p.id === id);
  assert.ok(plugin, `explainer ${id} is not registered`);
  return plugin as unknown as CamExplainer;
};

const isRaw = (c: GoldenCase) => c.file.endsWith('-raw.npy');
/** The same eigen case with the principal component's sign reversed: the reference's sign is LAPACK's, so either is right. */
function oppositeSign(c: GoldenCase): string | undefined {
  if (!(c.method === 'eigencam' || c.method === 'eigengradcam' || c.eigen_smooth)) return undefined;
  const other = c.file.includes('-flipped') ? c.file.replace('-flipped', '') : c.file.replace(/-(predicted|explicit)/, '-$1-flipped');
  assert.ok(caseFiles.has(other), `${c.file} has no opposite-sign case ${other}`);
  return other;
}

async function goldenArray(dir: string, file: string): Promise<{ data: Float32Array; shape: number[] }> {
  const array = await readNpy(path.join(dir, file));
  assert.equal(array.dtype, 'float32');
  return { data: array.data as Float32Array, shape: array.shape };
}

/** Largest |actual − expected| per image. */
function errorsPerImage(actual: ArrayLike<number>, expected: Float32Array, images: number): number[] {
  assert.equal(actual.length, expected.length);
  const size = expected.length / images;
  return Array.from({ length: images }, (_, i) => {
    let worst = 0;
    for (let j = i * size; j < (i + 1) * size; j++) worst = Math.max(worst, Math.abs(actual[j] - expected[j]));
    return worst;
  });
}

const maxAbs = (values: Float32Array) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const flat = (maps: Float32Array[]) => Float32Array.from(maps.flatMap((map) => Array.from(map)));

/** What the case's params are in salgrid's terms. */
function paramsOf(c: GoldenCase): Record<string, string | boolean | number> {
  const params: Record<string, string | boolean | number> = { eigenSmooth: c.eigen_smooth === true, augSmooth: c.aug_smooth === true };
  if (c.target_layer) params.layer = c.target_layer;
  return params;
}

async function loadTinyCnn(): Promise<{ model: LoadedModel; input: tf.Tensor4D }> {
  const model = bareLoadedModel(await loadLayersModel(TINY));
  const inputs = await goldenArray(TINY, 'inputs.npy');
  return { model, input: tf.tensor4d(inputs.data, inputs.shape as [number, number, number, number]) };
}

after(async () => {
  await tf.setBackend('cpu');
});

describe('CAM explainers', () => {
  it('are registered under the ids of pytorch-grad-cam’s methods, with the common params', () => {
    for (const id of CAM_IDS) {
      const properties = explainer(id).params.properties as Record<string, { default?: unknown }>;
      for (const name of ['target', 'eigenSmooth', 'augSmooth', 'signFix']) assert.ok(properties[name], `${id} has no ${name} param`);
      assert.equal(properties.layer?.default, id === 'fullgrad' ? undefined : 'auto', `${id}: layer`);
      assert.equal(properties.batchSize?.default, { scorecam: 16, ablationcam: 32 }[id], `${id}: batchSize`);
    }
    // Every method has a golden case, so no method goes untested.
    assert.deepEqual([...new Set(camCases.map((c) => c.method))].sort(), [...CAM_IDS].sort());
  });
});

for (const backend of BACKENDS) {
  describe(`CAM explainers = pytorch-grad-cam 1.5.5 on tiny-cnn (${backend})`, () => {
    let model: LoadedModel;
    let input: tf.Tensor4D;
    before(async () => {
      await useEngine(backend);
      ({ model, input } = await loadTinyCnn());
    });
    after(() => {
      model.engine.dispose();
      model.model?.dispose();
      input.dispose();
    });

    for (const c of camCases) {
      it(`${c.file}: ${c.method}${c.eigen_smooth ? ' eigenSmooth' : ''}${c.aug_smooth ? ' augSmooth' : ''}, target ${c.target}`, async () => {
        const expected = await goldenArray(TINY, c.file);
        const images = input.shape[0];
        const targets = c.target === 'explicit' ? golden.explicit_targets : golden.predicted;
        const plugin = explainer(c.method as string);
        const before = tf.memory().numTensors;
        let actual: Float32Array;
        if (isRaw(c)) {
          const maps = await plugin.rawMaps(model, input, targets, paramsOf(c));
          assert.equal(maps.length, 1, 'one map per target layer');
          assert.deepEqual(maps[0].shape, expected.shape);
          actual = maps[0].dataSync() as Float32Array;
          tf.dispose(maps);
        } else {
          // explainInput takes one class for every image; the golden's explicit targets are one class.
          assert.ok(targets.every((t) => t === targets[0]));
          const result = await plugin.explainInput(model, input, { ...paramsOf(c), target: c.target === 'explicit' ? targets[0] : 'predicted' });
          assert.deepEqual(result.targets, targets);
          assert.deepEqual([result.maps.length, result.maps[0].length], [expected.shape[0], expected.shape[1] * expected.shape[2]]);
          actual = flat(result.maps);
        }
        assert.equal(tf.memory().numTensors, before, 'leaks no tensors');

        // Golden README: raw maps to 1e-3 × their largest |value| (float32 sums in another order), final maps to 2e-3.
        const tolerance = (data: Float32Array) => (isRaw(c) ? 1e-3 * maxAbs(data) : 2e-3);
        const errors = errorsPerImage(actual, expected.data, images);
        const other = oppositeSign(c);
        if (!other) {
          const worst = Math.max(...errors);
          assert.ok(worst <= tolerance(expected.data), `${backend}: max error ${worst} > ${tolerance(expected.data)} (per image ${errors.join(', ')})`);
          return;
        }
        // Eigen cases: per image, this sign or the opposite one.
        const flipped = await goldenArray(TINY, other);
        const flippedErrors = errorsPerImage(actual, flipped.data, images);
        errors.forEach((error, i) => {
          const matches = error <= tolerance(expected.data) || flippedErrors[i] <= tolerance(flipped.data);
          assert.ok(matches, `${backend}, image ${i}: max error ${error} against ${c.file}, ${flippedErrors[i]} against ${other}`);
        });
      });
    }
  });
}

describe('CAM explainers: params and layers (wasm)', () => {
  let model: LoadedModel;
  let input: tf.Tensor4D;
  before(async () => {
    await useEngine('wasm');
    ({ model, input } = await loadTinyCnn());
  });
  after(() => {
    model.engine.dispose();
    model.model?.dispose();
    input.dispose();
  });
  const maps = async (id: string, params: Record<string, unknown>) => flat((await explainer(id).explainInput(model, input, params as never)).maps);
  const assertSame = (a: Float32Array, b: Float32Array, what: string, tolerance = 1e-6) => {
    const worst = Math.max(...errorsPerImage(a, b, 1));
    assert.ok(worst <= tolerance, `${what}: max difference ${worst}`);
  };

  it('layer auto is the last convolution of a bare model; a list averages the layers’ scaled maps', async () => {
    assert.equal(model.target.activation, 'conv3');
    const relu3 = await maps('gradcam', { layer: 'relu3' });
    assertSame(await maps('gradcam', { layer: ['relu3', 'relu3'] }), relu3, 'the mean of one layer twice is that layer');
    const both = await maps('gradcam', { layer: ['relu2', 'relu3'] });
    assert.equal(both.length, relu3.length);
    assert.ok(Math.max(...errorsPerImage(both, relu3, 1)) > 1e-3, 'a second layer changes the map');
    assert.ok(Math.min(...both) >= 0 && Math.abs(Math.max(...both) - 1) < 1e-6, 'the mean is scaled to [0, 1] again');
  });

  it('an unknown layer is a user error naming the nearest ones', async () => {
    await assert.rejects(maps('gradcam', { layer: 'relu4' }), (error: Error) => isUserError(error) && /no layer named "relu4"; nearest: relu/.test(error.message));
  });

  it('signFix orients each principal component; without it the sign is the decomposition’s', async () => {
    const fixed = await explainer('eigencam').rawMaps(model, input, golden.predicted, { layer: 'relu3' });
    const free = await explainer('eigencam').rawMaps(model, input, golden.predicted, { layer: 'relu3', signFix: false });
    const [a, b] = [fixed[0].arraySync() as number[][][], free[0].arraySync() as number[][][]];
    tf.dispose([...fixed, ...free]);
    // After the ReLU, a map and its opposite-sign twin share no positive pixel: each image is one or the other.
    a.forEach((map, i) => {
      const same = Math.max(...map.flat().map((v, j) => Math.abs(v - b[i].flat()[j])));
      const disjoint = map.flat().every((v, j) => v === 0 || b[i].flat()[j] === 0);
      assert.ok(same < 1e-6 || disjoint, `image ${i}`);
    });
  });

  it('scorecam and ablationcam give the same maps whatever their batchSize', async () => {
    for (const id of ['scorecam', 'ablationcam']) {
      assertSame(await maps(id, { layer: 'relu3', batchSize: 5 }), await maps(id, { layer: 'relu3' }), `${id} batchSize 5`, 1e-5);
    }
  });
});

describe('gradients at several layers and forwarding from a layer (DenseNet: concatenations bypass layers)', () => {
  const goldenState = stateDictLoader(path.join(TORCHVISION, 'densenet', 'state_dict.pth'));
  it('layerGradients equals layerGradient layer by layer; forwardFromLayer with a layer’s own activations gives the logits', async (t) => {
    await useEngine('wasm');
    if (!(await goldenState(t))) return;
    const { loaded, input } = await torchvisionModel('densenet');
    const names = ['features_denseblock2_denselayer1_conv2', 'features_transition2_conv', 'features_norm5'];
    const targets = [1, 3];
    const many = layerGradients(loaded.model, input, names, targets, { inputGradient: true });
    for (const [i, name] of names.entries()) {
      const one = layerGradient(loaded.model, input, name, targets);
      assertClose(many.layers[i].activations, one.activations, `${name} activations`);
      assertClose(many.layers[i].gradients, one.gradients, `${name} gradients`);
      tf.dispose([one.activations, one.gradients]);
    }
    assert.deepEqual(many.input?.shape, input.shape);
    const logits = classScores(loaded.model, input);
    // The first dense layer's output is concatenated with its input further on: that input comes from the image, computed once per image.
    for (const [i, name] of names.entries()) {
      const own = forwardFromLayer(loaded.model, name, many.layers[i].activations, { input });
      assertClose(own, logits, `forward from ${name}`);
      own.dispose();
    }
    const image = tf.slice(input, [0, 0, 0, 0], [1, -1, -1, -1]);
    const repeated = tf.tile(tf.slice(many.layers[0].activations, [0, 0, 0, 0], [1, -1, -1, -1]), [3, 1, 1, 1]);
    const three = forwardFromLayer(loaded.model, names[0], repeated, { input: image });
    const first = tf.tile(tf.slice(logits, [0, 0], [1, -1]), [3, 1]);
    assertClose(three, first, 'one image’s bypass values repeated for three rows');
    assert.throws(() => forwardFromLayer(loaded.model, names[0], repeated), (error: Error) => isUserError(error) && /bypass/.test(error.message));
    tf.dispose([...many.layers.flatMap((l) => [l.activations, l.gradients]), many.input as tf.Tensor, logits, image, repeated, three, first, input]);
    loaded.engine.dispose();
    loaded.model.dispose();
  });
});

function assertClose(actual: tf.Tensor, expected: tf.Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.dataSync();
  const b = expected.dataSync();
  const scale = maxAbs(b as Float32Array);
  assert.ok(scale > 0, `${what}: all zeros proves nothing`);
  const worst = Math.max(...errorsPerImage(a, b as Float32Array, 1));
  assert.ok(worst <= 1e-5 * scale, `${what}: max difference ${worst} (scale ${scale})`);
}

// ---------------------------------------------------------------- torchvision families

interface Family {
  dir: string;
  architecture: string;
  params(config: Record<string, unknown>): Record<string, unknown>;
}

const FAMILIES: Family[] = [
  { dir: 'mobilenet_v2', architecture: 'mobilenet-v2', params: (c) => ({ widthMult: c.width_mult }) },
  { dir: 'resnet', architecture: 'resnet', params: (c) => ({ block: 'bottleneck', layers: c.layers, widthPerGroup: c.width_per_group }) },
  { dir: 'densenet', architecture: 'densenet', params: (c) => ({ growthRate: c.growth_rate, blockConfig: c.block_config, initFeatures: c.num_init_features }) },
  { dir: 'googlenet', architecture: 'googlenet', params: (c) => ({ transformInput: c.transform_input }) },
];

/** Where the state dict is: in the repository, or (too large to copy) beside the checkout. */
function stateFile(dir: string): string {
  const local = path.join(TORCHVISION, dir, 'state_dict.pth');
  return existsSync(local) ? local : path.join(ROOT, '..', 'shared', 'golden', 'torchvision', dir, 'state_dict.pth');
}

const savedModels = new Map<string, Promise<string>>();

/** The golden state dict imported by the architecture plugin and saved with its card, once; loaded as `explain` loads a model. */
async function torchvisionModel(dir: string): Promise<{ loaded: TfjsLoadedModel; input: tf.Tensor4D }> {
  const family = FAMILIES.find((f) => f.dir === dir) as Family;
  const plugin = builtins.find((p) => p.id === family.architecture);
  assert.ok(plugin && plugin.kind === 'architecture' && isTfjsArchitecture(plugin));
  const architecture = plugin as TfjsArchitecture;
  const config = JSON.parse(readFileSync(path.join(TORCHVISION, dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const inputs = await goldenArray(path.join(TORCHVISION, dir), 'inputs.npy');
  let saved = savedModels.get(dir);
  if (!saved) {
    saved = (async () => {
      const { model, card } = await architecture.importPyTorch(stateFile(dir), family.params(config) as never, { inputSize: [inputs.shape[1], inputs.shape[2]] });
      const folder = tempDir('salgrid-cam-');
      await saveModelWithCard(model, card, folder);
      model.dispose();
      return folder;
    })();
    savedModels.set(dir, saved);
  }
  return { loaded: await architecture.load(await saved), input: tf.tensor4d(inputs.data, inputs.shape as [number, number, number, number]) };
}

for (const backend of BACKENDS) {
  describe(`Grad-CAM = pytorch-grad-cam at each torchvision family's default layer (${backend})`, () => {
    before(async () => {
      await useEngine(backend);
    });
    for (const family of FAMILIES) {
      const goldenState = stateDictLoader(stateFile(family.dir));
      it(`${family.dir}: gradcam.npy at ${JSON.parse(readFileSync(path.join(TORCHVISION, family.dir, 'config.json'), 'utf8')).target_layer}`, async (t: TestContext) => {
        if (!(await goldenState(t))) return;
        const { loaded, input } = await torchvisionModel(family.dir);
        try {
          const expected = await goldenArray(path.join(TORCHVISION, family.dir), 'gradcam.npy');
          const result = await explainer('gradcam').explainInput(loaded, input, {});
          const errors = errorsPerImage(flat(result.maps), expected.data, input.shape[0]);
          assert.ok(Math.max(...errors) <= 2e-3, `${backend}: max error per image ${errors.join(', ')}`);
        } finally {
          loaded.engine.dispose();
          loaded.model.dispose();
          input.dispose();
        }
      });
    }
  });
}
