/**
 * The attribution explainers against Captum 0.8 (the goldens of
 * ../shared/golden, copied into test/fixtures/golden): every captum case of
 * tiny-cnn's cases.json on cpu and on wasm, target = predicted class, with the
 * golden README's tolerances — raw attributions to 1e-3 × the largest
 * absolute expected value, normalised maps to 2e-3 absolute. Then unit tests:
 * Gauss–Legendre and Riemann points, Captum's threshold on hand examples,
 * max-pool routing, occlusion's window formula, seeded determinism, and the
 * all-zero map Captum refuses.
 *
 * Each method runs once per backend (its explainInput: the attributions and
 * the default `absolute` map); a normalised case of another sign draws its
 * map from those attributions with attributionMaps, the function the
 * explainer itself applies — occlusion and integrated gradients are too slow
 * on the cpu backend to run once per sign.
 *
 * On the cpu backend (plain JavaScript kernels, ~15× slower than wasm here)
 * the three many-pass cases — integrated gradients (50 and 20 steps) and
 * occlusion (225 forwards per image) — explain the first image only, to keep
 * the file under a minute: same code, same tolerance, one image of four. The
 * wasm backend checks all four images of every case.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import type { LoadedModel, Params } from '../src/core/plugins/types.ts';
import { maxPoolRouting, type PoolSpec } from '../src/core/tensor/modified-backprop.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { bareLoadedModel } from '../src/core/tensor/tensor-explainer.ts';
import builtins from '../src/plugins/index.ts';
import { writePng } from '../src/core/io/image-io.ts';
import { attributionMaps, baselineFor, cumulativeSumThreshold, type AttributionExplainer, type MapSign } from '../src/plugins/explainers/attribution/attribution-base.ts';
import { gaussLegendre, integrationPoints } from '../src/plugins/explainers/attribution/integrated-gradients.ts';
import { ROOT, largestError, tempDir } from './helpers.ts';
import { useEngine, type EngineSetting } from './engines.ts';

const TINY = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
/** The tfjs backends, or ONNX Runtime devices (`onnx:cpu`), the goldens are checked on. */
const BACKENDS: readonly EngineSetting[] = ['cpu', 'wasm', 'onnx:cpu'];

interface GoldenCase {
  library: string;
  method: string;
  target?: string;
  params?: Record<string, unknown>;
  sign?: string;
  outlier_perc?: number;
  file: string;
  shape: number[];
}

const golden = JSON.parse(readFileSync(path.join(TINY, 'cases.json'), 'utf8')) as { predicted: number[]; cases: GoldenCase[] };
const captumCases = golden.cases.filter((c) => c.library === 'captum');

const explainer = (id: string): AttributionExplainer => {
  const plugin = builtins.find((p) => p.kind === 'explainer' && p.id === id);
  assert.ok(plugin, `explainer ${id} is not registered`);
  return plugin as unknown as AttributionExplainer;
};

/** The golden method → our explainer and params (Captum's names translated). */
const METHODS: Record<string, { id: string; params: Params; cpuImages?: number }> = {
  saliency: { id: 'saliency', params: { abs: true } },
  'input-x-gradient': { id: 'input-x-gradient', params: {} },
  'integrated-gradients': { id: 'integrated-gradients', params: { steps: 50, method: 'gausslegendre', baseline: 'zeros', internalBatchSize: 100 }, cpuImages: 1 },
  'integrated-gradients-riemann': { id: 'integrated-gradients', params: { steps: 20, method: 'riemann_trapezoid', baseline: 'zeros', internalBatchSize: 80 }, cpuImages: 1 },
  occlusion: { id: 'occlusion', params: { window: [8, 8], stride: [4, 4], baseline: 0, internalBatchSize: 75 }, cpuImages: 1 },
  deeplift: { id: 'deeplift', params: { baseline: 'zeros' } },
  'guided-backprop': { id: 'guided-backprop', params: {} },
};

const SIGNS: Record<string, MapSign> = { positive: 'positive', negative: 'negative', absolute_value: 'absolute', all: 'all' };

const concat = (arrays: Float32Array[]) => {
  const all = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  arrays.reduce((offset, a) => (all.set(a, offset), offset + a.length), 0);
  return all;
};

for (const backend of BACKENDS) {
  describe(`Captum 0.8 goldens on ${backend}`, () => {
    let model: LoadedModel;
    let input: tf.Tensor4D;
    const runs = new Map<string, Promise<{ images: number; maps: Float32Array; attributions: Float32Array; targets: number[]; warnings: string[] }>>();
    const run = (method: string) => {
      let result = runs.get(method);
      if (!result) {
        const { id, params, cpuImages } = METHODS[method];
        const images = backend === 'cpu' && cpuImages !== undefined ? cpuImages : input.shape[0];
        const warnings: string[] = [];
        const subset = tf.slice(input, [0, 0, 0, 0], [images, -1, -1, -1]);
        result = explainer(id)
          .explainInput(model, subset, params, { warn: (m) => warnings.push(m) })
          .then((r) => ({ images, maps: concat(r.maps), attributions: concat(r.attributions!), targets: r.targets, warnings }))
          .finally(() => subset.dispose());
        runs.set(method, result);
      }
      return result;
    };

    before(async () => {
      await useEngine(backend);
      model = bareLoadedModel(await loadLayersModel(TINY));
      const inputs = await readNpy(path.join(TINY, 'inputs.npy'));
      input = tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
    });
    after(() => {
      model.engine.dispose();
      model.model?.dispose();
      input.dispose();
    });

    for (const c of captumCases) {
      const normalised = c.sign !== undefined;
      it(`${c.file}: ${normalised ? `${c.method} map, sign ${c.sign}, within 2e-3` : `${c.method} attributions within 1e-3 × max |expected|`}`, async () => {
        assert.ok(METHODS[c.method], `no explainer mapped for golden method ${c.method}`);
        const before = tf.memory().numTensors;
        const result = await run(c.method);
        const all = (await readNpy(path.join(TINY, c.file))).data as Float32Array;
        const expected = all.subarray(0, (all.length / c.shape[0]) * result.images);
        assert.deepEqual(result.targets, golden.predicted.slice(0, result.images), 'targets are the predicted classes');
        if (!normalised) {
          assert.deepEqual(c.shape, input.shape);
          const { error, scale } = largestError(result.attributions, expected);
          assert.ok(scale > 0);
          assert.ok(error <= 1e-3 * scale, `max |attribution − Captum| = ${error} > 1e-3 × ${scale} on ${backend}`);
          assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
          return;
        }
        assert.equal(c.outlier_perc, 2);
        const sign = SIGNS[c.sign!];
        let maps: ArrayLike<number>;
        if (sign === 'absolute') {
          // The explainer's own map (default sign absolute, normalize captum).
          maps = result.maps;
          assert.deepEqual(result.warnings, []);
        } else {
          const attributions = tf.tensor4d(result.attributions, [result.images, ...input.shape.slice(1)] as [number, number, number, number]);
          const { maps: tensor, refused } = attributionMaps(attributions, { sign, normalize: 'captum', outlierPercent: 2 });
          assert.deepEqual(refused, [], 'Captum normalised every image of this case');
          maps = tensor.dataSync();
          tf.dispose([attributions, tensor]);
        }
        const { error } = largestError(maps, expected);
        assert.ok(error <= 2e-3, `max |map − Captum| = ${error} > 2e-3 on ${backend}`);
      });
    }

    it('signs Captum refuses: saliency (absolute gradients) has no negative map — all zeros and a warning, not a crash', async () => {
      const warnings: string[] = [];
      const result = await explainer('saliency').explainInput(model, input, { sign: 'negative' }, { warn: (m) => warnings.push(m) });
      assert.ok(result.maps.every((map) => map.every((v) => v === 0)));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /saliency: image\(s\) 0, 1, 2, 3 .*no negative attribution.*all zeros/);
      assert.equal(captumCases.some((c) => c.method === 'saliency' && c.sign === 'negative'), false, 'the golden has no such case either');
    });
  });
}

describe('integration points', () => {
  it('Gauss–Legendre nodes and weights on [−1, 1] equal the tabulated values', () => {
    const close = (a: number[], b: number[]) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-14, `${v} ≠ ${b[i]}`));
    close(gaussLegendre(1).nodes, [0]);
    close(gaussLegendre(1).weights, [2]);
    close(gaussLegendre(2).nodes, [-1 / Math.sqrt(3), 1 / Math.sqrt(3)]);
    close(gaussLegendre(2).weights, [1, 1]);
    close(gaussLegendre(3).nodes, [-Math.sqrt(3 / 5), 0, Math.sqrt(3 / 5)]);
    close(gaussLegendre(3).weights, [5 / 9, 8 / 9, 5 / 9]);
    close(gaussLegendre(5).nodes, [-0.906179845938664, -0.5384693101056831, 0, 0.5384693101056831, 0.906179845938664]);
    close(gaussLegendre(5).weights, [0.2369268850561891, 0.4786286704993665, 0.5688888888888889, 0.4786286704993665, 0.2369268850561891]);
  });

  it('Captum’s Gauss–Legendre on [0, 1] integrates polynomials of degree 2n − 1 exactly (n = 50: ∫x⁹⁹ = 1/100)', () => {
    const { alphas, weights } = integrationPoints('gausslegendre', 50);
    assert.ok(alphas.every((a, i) => a > 0 && a < 1 && (i === 0 || a > alphas[i - 1])));
    assert.ok(Math.abs(weights.reduce((a, b) => a + b, 0) - 1) < 1e-13);
    const integral = alphas.reduce((sum, a, i) => sum + weights[i] * a ** 99, 0);
    assert.ok(Math.abs(integral - 0.01) < 1e-13, `${integral}`);
  });

  it('Captum’s Riemann points and step sizes', () => {
    const round = (v: number[]) => v.map((x) => Math.round(x * 1e12) / 1e12);
    assert.deepEqual(round(integrationPoints('riemann_trapezoid', 5).alphas), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(round(integrationPoints('riemann_trapezoid', 5).weights), [0.1, 0.2, 0.2, 0.2, 0.1]);
    assert.deepEqual(round(integrationPoints('riemann_left', 5).alphas), [0, 0.2, 0.4, 0.6, 0.8]);
    assert.deepEqual(round(integrationPoints('riemann_right', 5).alphas), [0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(round(integrationPoints('riemann_middle', 5).alphas), [0.1, 0.3, 0.5, 0.7, 0.9]);
    assert.deepEqual(round(integrationPoints('riemann_middle', 5).weights), [0.2, 0.2, 0.2, 0.2, 0.2]);
    assert.throws(() => integrationPoints('riemann_left', 1), isUserError);
  });
});

describe('Captum’s normalisation', () => {
  before(async () => {
    await useEngine('cpu');
  });

  it('the threshold is the first sorted value whose cumulative sum reaches the percentile', () => {
    assert.equal(cumulativeSumThreshold(Float32Array.of(4, 1, 3, 2), 98), 4); // sums 1 3 6 10, 9.8 reached at 4
    assert.equal(cumulativeSumThreshold(Float32Array.of(4, 1, 3, 2), 50), 3); // 5 reached at 6
    assert.equal(cumulativeSumThreshold(Float32Array.of(0, 0, 0), 98), 0);
    // 98 ones and a 100: total 198, 98 % = 194.04, reached only by the 100.
    assert.equal(cumulativeSumThreshold(Float32Array.from([...new Array(98).fill(1), 100]), 98), 100);
  });

  it('maps: channel sum, sign, divided by the threshold and clipped; negative shown positive; refused images all zeros', () => {
    // One image 1×4, two channels: channel sums 3, −1, 0.5, −4.
    const attributions = tf.tensor4d([1, 2, -2, 1, 0.25, 0.25, -1, -3], [1, 1, 4, 2]);
    // Float32 results, rounded for comparison.
    const rounded = (t: tf.Tensor) => Array.from(t.dataSync(), (v) => Math.round(v * 1e6) / 1e6);
    const map = (sign: MapSign) => {
      const { maps, refused } = attributionMaps(attributions, { sign, normalize: 'captum', outlierPercent: 2 });
      const values = rounded(maps);
      maps.dispose();
      return { values, refused };
    };
    // positive: values 3, 0, 0.5, 0 → sorted 0 0 0.5 3, sums reach 98 % of 3.5 at 3.
    assert.deepEqual(map('positive').values, [1, 0, 0.166667, 0]);
    // absolute: 3 1 0.5 4 → sorted 0.5 1 3 4, 98 % of 8.5 = 8.33 reached at 4.
    assert.deepEqual(map('absolute').values, [0.75, 0.25, 0.125, 1]);
    // negative: −1, −4 → threshold −4, map positive.
    assert.deepEqual(map('negative').values, [0, 0.25, 0, 1]);
    assert.deepEqual(map('all').values, [0.75, -0.25, 0.125, -1]);
    // 50 %: absolute threshold is 3 (sums 0.5 1.5 4.5 ≥ 4.25), the 4 clipped to 1.
    const { maps } = attributionMaps(attributions, { sign: 'absolute', normalize: 'captum', outlierPercent: 50 });
    assert.deepEqual(rounded(maps), [1, 0.333333, 0.166667, 1]);
    const nothing = tf.tensor4d([1, 2, 0, 1, 0, 0, 3, 0], [1, 1, 4, 2]);
    const refused = attributionMaps(nothing, { sign: 'negative', normalize: 'captum', outlierPercent: 2 });
    assert.deepEqual(refused.refused, [0]);
    assert.deepEqual(Array.from(refused.maps.dataSync()), [0, 0, 0, 0]);
    const minmax = attributionMaps(attributions, { sign: 'negative', normalize: 'minmax', outlierPercent: 2 });
    assert.deepEqual(Array.from(minmax.maps.dataSync()), [0, 0.25, 0, 1]);
    tf.dispose([attributions, maps, nothing, refused.maps, minmax.maps]);
  });
});

describe('max-pool routing (backward of max pooling, ties to the first maximum)', () => {
  before(async () => {
    await useEngine('cpu');
  });

  // The cpu backend's MaxPoolGrad takes the first maximum (strict >), as PyTorch does.
  const cases: Array<[string, PoolSpec]> = [
    ['2×2/2 valid', { size: [2, 2], strides: [2, 2], padding: 'valid' }],
    ['2×2/2 valid, odd size', { size: [2, 2], strides: [2, 2], padding: 'valid' }],
    ['3×3/2 same', { size: [3, 3], strides: [2, 2], padding: 'same' }],
    ['3×3/1 valid', { size: [3, 3], strides: [1, 1], padding: 'valid' }],
    ['3×3/3 valid', { size: [3, 3], strides: [3, 3], padding: 'valid' }],
  ];
  for (const [name, pool] of cases) {
    it(`${name}: equals the cpu backend's MaxPoolGrad, with many ties`, () => {
      tf.tidy(() => {
        const [h, w] = name.includes('odd') ? [7, 9] : [12, 12];
        // Small integers: windows with several equal maxima.
        const x = tf.floor(tf.randomUniform([2, h, w, 3], 0, 3, 'float32', 11)) as tf.Tensor4D;
        const y = tf.maxPool(x, pool.size, pool.strides, pool.padding);
        const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 5) as tf.Tensor4D;
        const reference = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(z as tf.Tensor4D, pool.size, pool.strides, pool.padding), dy)))(x);
        const routed = maxPoolRouting(x, pool)(dy);
        assert.ok(tf.max(tf.abs(tf.sub(routed, reference))).dataSync()[0] < 1e-6);
      });
    });
  }
});

describe('occlusion windows', () => {
  before(async () => {
    await useEngine('cpu');
  });

  it('a pixel gets the mean score drop of the windows covering it; the last window is cut at the border (Captum’s ceil)', async () => {
    // A linear model: the drop of a window is Σ w·x over it.
    const [h, w] = [7, 6];
    const weights = Array.from({ length: h * w * 2 }, (_, i) => Math.sin(i + 1));
    const x = Array.from({ length: h * w * 2 }, (_, i) => Math.cos(3 * i));
    const net = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [h, w, 2] }), tf.layers.dense({ units: 1, useBias: false })] });
    net.layers[1].setWeights([tf.tensor2d(weights, [h * w * 2, 1])]);
    const input = tf.tensor4d(x, [1, h, w, 2]);
    const result = await explainer('occlusion').explainInput(bareLoadedModel(net), input, { window: [3, 4], stride: [2, 3] });
    // By hand: windows start at rows 0 2 4 (ceil((7 − 3) / 2) + 1 = 3) and columns 0 3 (ceil((6 − 4) / 3) + 1 = 2, the second cut to columns 3–5).
    const rowStarts = Array.from({ length: Math.ceil((h - 3) / 2) + 1 }, (_, k) => 2 * k);
    const colStarts = Array.from({ length: Math.ceil((w - 4) / 3) + 1 }, (_, k) => 3 * k);
    const expected = new Float32Array(h * w * 2);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        let sum = 0;
        let count = 0;
        for (const r of rowStarts) {
          for (const c of colStarts) {
            if (i < r || i >= r + 3 || j < c || j >= c + 4) continue;
            count++;
            for (let a = r; a < Math.min(r + 3, h); a++) for (let b = c; b < Math.min(c + 4, w); b++) for (let k = 0; k < 2; k++) sum += weights[(a * w + b) * 2 + k] * x[(a * w + b) * 2 + k];
          }
        }
        expected[(i * w + j) * 2] = expected[(i * w + j) * 2 + 1] = sum / count;
      }
    }
    const { error, scale } = largestError(result.attributions![0], expected);
    assert.ok(error <= 1e-5 * scale, `${error}`);
    assert.throws(() => tf.tidy(() => void explainer('occlusion').withDefaults({ window: [3, 4], stride: 'x' as never })), isUserError);
    await assert.rejects(explainer('occlusion').explainInput(bareLoadedModel(net), input, { window: [3, 2], stride: [3, 3] }), /stride \(3\) is larger than the window \(2\)/);
    net.dispose();
    input.dispose();
  });
});

describe('baselines', () => {
  before(async () => {
    await useEngine('cpu');
  });

  it('zeros, a constant, uniform (seeded, in the input space), blurred (keeps a constant image), an image file (preprocessed as the input)', async () => {
    const net = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [8, 8, 3] }), tf.layers.dense({ units: 2 })] });
    const model = bareLoadedModel(net);
    // Two constant images, 0.5 and 0.25.
    const input = tf.tidy(() => tf.concat([tf.fill([1, 8, 8, 3], 0.5), tf.fill([1, 8, 8, 3], 0.25)]) as tf.Tensor4D);
    const batch = { model, input, targets: [0, 1], warn: () => {}, baseDir: process.cwd() };
    const values = async (kind: Parameters<typeof baselineFor>[0], options = {}) => {
      const t = await baselineFor(kind, batch, options);
      assert.deepEqual(t.shape, input.shape);
      const data = Array.from(t.dataSync());
      t.dispose();
      return data;
    };
    assert.ok((await values('zeros')).every((v) => v === 0));
    assert.ok((await values(0.25)).every((v) => v === 0.25));
    const uniform = await values('uniform', { seed: 1 });
    assert.ok(uniform.every((v) => v >= 0 && v <= 1));
    assert.deepEqual(await values('uniform', { seed: 1 }), uniform);
    assert.notDeepEqual(await values('uniform', { seed: 2 }), uniform);
    assert.notDeepEqual(uniform.slice(0, 192), uniform.slice(192), 'each image draws its own noise');
    assert.ok((await values('blurred', { blurSigma: 2 })).every((v, i) => Math.abs(v - (i < 192 ? 0.5 : 0.25)) < 1e-6));
    const file = path.join(tempDir(), 'baseline.png');
    const pixels = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 7) % 256);
    await writePng(file, { width: 8, height: 8, channels: 3, data: pixels });
    const image = await values(file);
    image.forEach((v, i) => assert.ok(Math.abs(v - pixels[i % pixels.length] / 255) < 1e-6));
    tf.dispose(input);
    net.dispose();
  });
});

describe('seeded randomness', () => {
  let model: LoadedModel;
  let input: tf.Tensor4D;
  before(async () => {
    await useEngine('wasm');
    model = bareLoadedModel(await loadLayersModel(TINY));
    const inputs = await readNpy(path.join(TINY, 'inputs.npy'));
    input = tf.tidy(() => tf.slice(tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]), [0, 0, 0, 0], [2, -1, -1, -1]));
  });
  after(() => {
    model.engine.dispose();
    model.model?.dispose();
    input.dispose();
  });

  const configs: Array<[string, Params]> = [
    ['smoothgrad', { method: 'saliency', samples: 4, noiseStd: 0.2, seed: 3 }],
    ['vargrad', { method: 'input-x-gradient', samples: 4, noiseStd: 0.2, seed: 3 }],
    ['gradient-shap', { samples: 6, stdevs: 0.1, baselines: ['zeros', 'uniform', 'blurred'], seed: 3 }],
  ];
  for (const [id, params] of configs) {
    it(`${id}: same params, same maps (also for an image explained alone); another seed, other maps`, async () => {
      const first = await explainer(id).explainInput(model, input, params);
      const again = await explainer(id).explainInput(model, input, params);
      const alone = await explainer(id).explainInput(model, tf.slice(input, [1, 0, 0, 0], [1, -1, -1, -1]), params);
      const reseeded = await explainer(id).explainInput(model, input, { ...params, seed: 4 });
      assert.deepEqual(again.maps, first.maps);
      assert.deepEqual(again.attributions, first.attributions);
      assert.deepEqual(alone.attributions![0], first.attributions![1]);
      assert.notDeepEqual(reseeded.attributions![0], first.attributions![0]);
    });
  }

  it('without noise, smoothgrad is the wrapped method and vargrad is zero', async () => {
    const plain = await explainer('integrated-gradients').explainInput(model, input, { steps: 4 });
    const smooth = await explainer('smoothgrad').explainInput(model, input, { method: 'integrated-gradients', methodParams: { steps: 4 }, samples: 3, noiseStd: 0 });
    const variance = await explainer('vargrad').explainInput(model, input, { method: 'integrated-gradients', methodParams: { steps: 4 }, samples: 3, noiseStd: 0 });
    const { error, scale } = largestError(concat(smooth.attributions!), concat(plain.attributions!));
    assert.ok(error <= 1e-6 * scale, `${error}`);
    assert.ok(concat(variance.attributions!).every((v) => Math.abs(v) <= 1e-6 * scale));
    await assert.rejects(explainer('smoothgrad').explainInput(model, input, { method: 'saliency', methodParams: { steps: 4 } }), /Invalid params for explainer saliency/);
  });
});
