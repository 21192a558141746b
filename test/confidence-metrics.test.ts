/**
 * The perturbation measures that call the model:
 *
 * - `confidence-change` against pytorch-grad-cam's CamMultImageConfidenceChange,
 *   DropInConfidence and IncreaseInConfidence on the golden tiny-cnn
 *   (`metric-*` cases, per image, by logit and by softmax), to 1e-4 on cpu
 *   and wasm, one test per case and backend;
 * - the map stays aligned with the image (rows are rows): a map that is not
 *   symmetric, on a model that sees where pixels are;
 * - the zero / important / unimportant variants against a brute-force
 *   computation in plain JavaScript on a linear model;
 * - `deletion` and `insertion` on a toy model whose curve can be checked by hand.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { arrayInputs, classScores, scoreWithModel, type MapArray, type MetricValues } from '../src/core/tensor/model-metric.ts';
import { readNpy } from '../src/core/io/npy.ts';
import { bareLoadedModel } from '../src/core/tensor/tensor-explainer.ts';
import type { LoadedModel } from '../src/core/plugins/types.ts';
import { causalColumns, pixelRanks, scoreCausal, stepCounts, trapezoidAuc } from '../src/plugins/metrics/causal-fidelity.ts';
import { confidenceChange, confidenceColumns, darken, type ConfidenceChangeParams } from '../src/plugins/metrics/confidence-change.ts';
import { deletion } from '../src/plugins/metrics/deletion.ts';
import { insertion } from '../src/plugins/metrics/insertion.ts';
import { ROOT } from './helpers.ts';
import { useEngine, type EngineSetting } from './engines.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const TOLERANCE = 1e-4;

interface MetricCase {
  library: string;
  metric: 'confidence-change' | 'drop-in-confidence' | 'increase-in-confidence';
  score: 'logit' | 'softmax';
  cams: string;
  file: string;
}

const cases = JSON.parse(readFileSync(path.join(GOLDEN, 'cases.json'), 'utf8')) as { predicted: number[]; cases: Array<MetricCase | { metric?: undefined }> };
const metricCases = cases.cases.filter((c): c is MetricCase => c.metric !== undefined);
/** salgrid's column for each pytorch-grad-cam metric. */
const COLUMN: Record<MetricCase['metric'], string> = { 'confidence-change': 'change', 'drop-in-confidence': 'drop', 'increase-in-confidence': 'increase' };

function mapsOf(array: { data: ArrayLike<number>; shape: number[] }): MapArray[] {
  const [n, h, w] = array.shape;
  return Array.from({ length: n }, (_, i) => ({ data: Float32Array.from(Array.prototype.slice.call(array.data, i * h * w, (i + 1) * h * w) as number[]), height: h, width: w }));
}

/** A bare model from layers, with fixed weights. */
function sequential(inputShape: number[], layers: tf.layers.Layer[]): tf.LayersModel {
  const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape }), ...layers] });
  return model;
}

function leakFree<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const start = tf.memory().numTensors;
  return fn().then((value) => {
    assert.equal(tf.memory().numTensors, start, `${what} leaks tensors`);
    return value;
  });
}

/** The tfjs backends, or ONNX Runtime devices (`onnx:cpu`), the goldens are checked on. */
const BACKENDS: readonly EngineSetting[] = ['cpu', 'wasm', 'onnx:cpu'];

for (const backend of BACKENDS) {
  describe(`confidence-change on the golden tiny-cnn (${backend})`, () => {
    let model: tf.LayersModel;
    let loaded: LoadedModel;
    let rows: Record<'logit' | 'softmax', MetricValues[]>;
    before(async () => {
      await useEngine(backend);
      model = await loadLayersModel(path.join(GOLDEN, 'model.json'));
      const inputs = await readNpy(path.join(GOLDEN, 'inputs.npy'));
      const maps = mapsOf(await readNpy(path.join(GOLDEN, 'cam-gradcam-predicted.npy')));
      loaded = bareLoadedModel(model);
      const source = arrayInputs(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
      rows = { logit: [], softmax: [] };
      for (const score of ['logit', 'softmax'] as const) {
        const params = { perturbation: 'darken', cover: 'unimportant', score } as ConfidenceChangeParams;
        rows[score] = await leakFree('confidence-change', () => scoreWithModel(confidenceChange.spec, loaded, source, async (i) => maps[i], params, { batchSize: 3 }));
      }
    });
    after(() => {
      loaded.engine.dispose();
      model.dispose();
    });

    it('an unperturbed input scores exactly as the original (map of ones): change 0, no spurious increase', async () => {
      const inputs = await readNpy(path.join(GOLDEN, 'inputs.npy'));
      const ones: MapArray = { data: new Float32Array(64 * 64).fill(1), height: 64, width: 64 };
      for (const params of [
        { perturbation: 'darken', cover: 'unimportant', thresholds: [0.5], score: 'softmax' },
        { perturbation: 'zero', cover: 'unimportant', thresholds: [0.9, 0.5], score: 'logit' },
      ] as ConfidenceChangeParams[]) {
        const got = await scoreWithModel(confidenceChange.spec, loaded, arrayInputs(inputs.data as Float32Array, inputs.shape as [number, number, number, number]), async () => ones, params);
        for (const row of got) {
          for (const [column, value] of Object.entries(row)) {
            if (column.startsWith('change')) assert.equal(value, 0, `${params.perturbation} ${column}`);
            if (column.startsWith('increase')) assert.equal(value, false, `${params.perturbation} ${column}`);
          }
        }
      }
    });

    for (const c of metricCases) {
      it(`${c.file}: pytorch-grad-cam ${c.metric} by ${c.score} per image`, async () => {
        assert.equal(c.cams, 'cam-gradcam-predicted.npy');
        const expected = await readNpy(path.join(GOLDEN, c.file));
        const got = rows[c.score];
        assert.equal(got.length, expected.shape[0]);
        assert.deepEqual(Object.keys(got[0]), confidenceColumns({ perturbation: 'darken' }));
        got.forEach((row, i) => {
          const value = row[COLUMN[c.metric]];
          const actual = typeof value === 'boolean' ? Number(value) : (value as number);
          const want = Number(expected.data[i]);
          assert.ok(Math.abs(actual - want) <= TOLERANCE, `image ${i}: ${COLUMN[c.metric]} ${actual}, pytorch-grad-cam ${want}`);
        });
      });
    }
  });
}

describe('confidence-change keeps the map aligned with the image', () => {
  before(() => useEngine('cpu'));

  it('multiplies pixel (y, x) of every channel by m[y, x], never m[x, y]', () => {
    const [h, w, c] = [4, 4, 3];
    const input = tf.tensor4d(Float32Array.from({ length: h * w * c }, (_, i) => i + 1), [1, h, w, c]);
    // Row 0 fully on, column 0 off: not symmetric, so a transposition shows.
    const m = tf.tensor3d(Float32Array.from({ length: h * w }, (_, i) => (Math.floor(i / w) === 0 ? 1 : 0.25 * (i % w))), [1, h, w]);
    const out = darken(input, m, 'unimportant');
    const x = input.dataSync();
    const mm = m.dataSync();
    const o = out.dataSync();
    for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let k = 0; k < c; k++) {
      const i = (y * w + xx) * c + k;
      assert.equal(o[i], x[i] * mm[y * w + xx], `pixel (${y}, ${xx}) channel ${k}`);
    }
    tf.dispose([input, m, out]);
  });

  it('a model that reads only the top row loses nothing when the map lights that row, and everything with its transpose', async () => {
    const [h, w] = [4, 4];
    // logit 0 = sum of the top row's first channel; logit 1 = 0.
    const kernel = new Float32Array(h * w * 3 * 2);
    for (let x = 0; x < w; x++) kernel[(0 * w + x) * 3 * 2 + 0] = 1;
    const model = sequential([h, w, 3], [tf.layers.flatten(), tf.layers.dense({ units: 2, weights: [tf.tensor2d(kernel, [h * w * 3, 2]), tf.zeros([2])] })]);
    const loaded = bareLoadedModel(model);
    const image = Float32Array.from({ length: h * w * 3 }, () => 1);
    const rowMap: MapArray = { data: Float32Array.from({ length: h * w }, (_, i) => (i < w ? 1 : 0)), height: h, width: w };
    const columnMap: MapArray = { data: Float32Array.from({ length: h * w }, (_, i) => (i % w === 0 ? 1 : 0)), height: h, width: w };
    const params = { perturbation: 'darken', cover: 'unimportant', score: 'logit' } as ConfidenceChangeParams;
    const [row, column] = await leakFree('confidence-change', () =>
      scoreWithModel(confidenceChange.spec, loaded, arrayInputs(new Float32Array([...image, ...image]), [2, h, w, 3]), async (i) => [rowMap, columnMap][i], params),
    );
    assert.equal(row.before, 4);
    assert.equal(row.after, 4, 'the lit top row keeps the score');
    assert.equal(row.drop, 0);
    assert.equal(column.after, 1, 'the lit left column keeps only the top-left pixel');
    assert.equal(column.drop, 3);
    model.dispose();
  });
});

/** Everything in plain JavaScript on a linear model logits = W·x + b. */
function bruteForce(x: Float32Array, map: Float32Array, W: Float32Array, b: Float32Array, classes: number, p: ConfidenceChangeParams): MetricValues {
  const pixels = map.length;
  const channels = x.length / pixels;
  const logits = (v: ArrayLike<number>) =>
    Array.from({ length: classes }, (_, k) => {
      let s = b[k];
      for (let i = 0; i < v.length; i++) s += v[i] * W[i * classes + k];
      return s;
    });
  const score = (v: ArrayLike<number>, cls: number) => {
    const z = logits(v);
    if (p.score === 'logit') return z[cls];
    const top = Math.max(...z);
    const e = z.map((zi) => Math.exp(zi - top));
    return e[cls] / e.reduce((a, c) => a + c, 0);
  };
  const z0 = logits(x);
  const cls = z0.indexOf(Math.max(...z0));
  const max = Math.max(...map);
  const m = Array.from(map, (v) => Math.max(v, 0) / max);
  const before = score(x, cls);
  const values = (after: number) => ({ after, change: after - before, drop: Math.max(0, before - after), relativeDrop: before > 0 ? Math.max(0, before - after) / before : null, increase: after > before });
  const row: MetricValues = { before };
  if (p.perturbation === 'darken') {
    const factor = m.map((v) => (p.cover === 'unimportant' ? v : 1 - v));
    return { ...row, ...values(score(Array.from(x, (v, i) => v * factor[Math.floor(i / channels)]), cls)) };
  }
  for (const t of p.thresholds) {
    const zeroed = (i: number) => (p.cover === 'important' ? m[i] >= t : m[i] < t);
    const after = score(Array.from(x, (v, i) => (zeroed(Math.floor(i / channels)) ? 0 : v)), cls);
    for (const [name, value] of Object.entries(values(after))) row[`${name}@${t.toFixed(2)}`] = value;
  }
  return row;
}

describe('confidence-change variants against a brute-force computation', () => {
  before(() => useEngine('cpu'));
  const [h, w, c, classes, n] = [6, 5, 3, 3, 4];
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const W = Float32Array.from({ length: h * w * c * classes }, () => random() - 0.5);
  const b = Float32Array.from({ length: classes }, () => random() - 0.5);
  const xs = Float32Array.from({ length: n * h * w * c }, () => 2 * random() - 0.5);
  // Signed maps with distinct values, one per image; negative values count as 0.
  const maps: MapArray[] = Array.from({ length: n }, () => ({ data: Float32Array.from({ length: h * w }, () => 3 * random() - 0.6), height: h, width: w }));

  const variants: Partial<ConfidenceChangeParams>[] = [
    { perturbation: 'darken', cover: 'unimportant', score: 'softmax' },
    { perturbation: 'darken', cover: 'important', score: 'softmax' },
    { perturbation: 'darken', cover: 'important', score: 'logit' },
    { perturbation: 'zero', cover: 'important', score: 'softmax' },
    { perturbation: 'zero', cover: 'unimportant', score: 'softmax' },
    { perturbation: 'zero', cover: 'unimportant', score: 'logit', thresholds: [0.9, 0.5, 0.2] },
  ];
  for (const variant of variants) {
    it(JSON.stringify(variant), async () => {
      const model = sequential([h, w, c], [tf.layers.flatten(), tf.layers.dense({ units: classes, weights: [tf.tensor2d(W, [h * w * c, classes]), tf.tensor1d(b)] })]);
      const params = { perturbation: 'darken', cover: 'unimportant', thresholds: [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5], score: 'softmax', ...variant } as ConfidenceChangeParams;
      const rows = await leakFree('confidence-change', () => scoreWithModel(confidenceChange.spec, bareLoadedModel(model), arrayInputs(xs, [n, h, w, c]), async (i) => maps[i], params, { batchSize: 3 }));
      assert.deepEqual(Object.keys(rows[0]), confidenceColumns(params));
      rows.forEach((row, i) => {
        const want = bruteForce(xs.subarray(i * h * w * c, (i + 1) * h * w * c), maps[i].data, W, b, classes, params);
        assert.deepEqual(Object.keys(row), Object.keys(want));
        for (const [column, value] of Object.entries(want)) {
          const got = row[column];
          if (typeof value === 'number') assert.ok(typeof got === 'number' && Math.abs(got - value) <= 1e-5 * Math.max(1, Math.abs(value)), `image ${i} ${column}: ${got}, brute force ${value}`);
          else assert.equal(got, value, `image ${i} ${column}`);
        }
      });
      if (params.perturbation === 'zero' && params.cover === 'unimportant') {
        // Some threshold must actually change the score, or the test would prove little.
        assert.ok(rows.some((row) => Object.entries(row).some(([k, v]) => k.startsWith('change@') && Math.abs(v as number) > 1e-3)));
      }
      model.dispose();
    });
  }

  it('maps with no positive value get nulls and one warning', async () => {
    const model = sequential([h, w, c], [tf.layers.flatten(), tf.layers.dense({ units: classes })]);
    const warnings: string[] = [];
    const zero: MapArray = { data: new Float32Array(h * w), height: h, width: w };
    const rows = await scoreWithModel(confidenceChange.spec, bareLoadedModel(model), arrayInputs(xs, [n, h, w, c]), async (i) => (i === 1 ? maps[0] : zero), { ...({} as ConfidenceChangeParams), perturbation: 'darken', cover: 'unimportant', thresholds: [0.5], score: 'softmax' }, {
      warn: (m) => warnings.push(m),
      names: ['a', 'b', 'c', 'd'],
    });
    assert.equal(typeof rows[1].drop, 'number');
    for (const i of [0, 2, 3]) assert.ok(Object.values(rows[i]).every((v) => v === null));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /3 of 4 images have a map with no positive value \(a, c, d\)/);
    model.dispose();
  });
});

describe('deletion and insertion', () => {
  before(() => useEngine('cpu'));

  it('step counts follow Xplique (np.linspace(0, K, steps + 1) truncated to int32)', () => {
    assert.deepEqual(stepCounts(4, 4), [0, 1, 2, 3, 4]);
    assert.deepEqual(stepCounts(10, 3), [0, 3, 6, 10]);
    assert.deepEqual(stepCounts(100, 4, 0.5), [0, 12, 25, 37, 50]);
    assert.equal(trapezoidAuc([10, 8, 5, 1, 0]), 4.75);
    assert.deepEqual(Array.from(pixelRanks([0.1, 0.9, 0.5, 0.3, 0.5])), [4, 0, 1, 3, 2]);
    assert.deepEqual(causalColumns({ steps: 4 }), ['auc', 'score@0', 'score@0.25', 'score@0.5', 'score@0.75', 'score@1']);
  });

  // logit 0 = the sum of the pixels, logit 1 = 0: the curve is a running sum.
  const toy = () => sequential([2, 2, 1], [tf.layers.flatten(), tf.layers.dense({ units: 2, weights: [tf.tensor2d([1, 0, 1, 0, 1, 0, 1, 0], [4, 2]), tf.zeros([2])] })]);
  const image = new Float32Array([1, 2, 3, 4]);
  const map: MapArray = { data: new Float32Array([0.1, 0.9, 0.5, 0.3]), height: 2, width: 2 };
  // Order of importance: pixel 1 (2), pixel 2 (3), pixel 3 (4), pixel 0 (1).

  it('deletion by logit: 10, 8, 5, 1, 0 → AUC 4.75; insertion: 0, 2, 5, 9, 10 → AUC 5.25', async () => {
    const model = toy();
    const loaded = bareLoadedModel(model);
    const params = { steps: 4, baseline: 'zero', maxPerturbed: 1, score: 'logit' } as const;
    const [del] = await leakFree('deletion', () => scoreWithModel(deletion.spec, loaded, arrayInputs(image, [1, 2, 2, 1]), async () => map, params));
    assert.deepEqual(del, { auc: 4.75, 'score@0': 10, 'score@0.25': 8, 'score@0.5': 5, 'score@0.75': 1, 'score@1': 0 });
    const [ins] = await leakFree('insertion', () => scoreWithModel(insertion.spec, loaded, arrayInputs(image, [1, 2, 2, 1]), async () => map, params));
    assert.deepEqual(ins, { auc: 5.25, 'score@0': 0, 'score@0.25': 2, 'score@0.5': 5, 'score@0.75': 9, 'score@1': 10 });
    model.dispose();
  });

  it('by softmax (default): the predicted class’s probability σ(running sum), AUC by trapezoid', async () => {
    const model = toy();
    const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
    const [row] = await scoreWithModel(deletion.spec, bareLoadedModel(model), arrayInputs(image, [1, 2, 2, 1]), async () => map, { steps: 2, baseline: 'zero', maxPerturbed: 1, score: 'softmax' });
    const curve = [10, 5, 0].map(sigmoid);
    assert.ok(Math.abs((row['score@0.5'] as number) - curve[1]) < 1e-6);
    assert.ok(Math.abs((row.auc as number) - ((curve[0] + curve[1]) / 2 + (curve[1] + curve[2]) / 2) / 2) < 1e-6);
    model.dispose();
  });

  it('a blur baseline and several images in one batch give each image its own curve', async () => {
    const model = toy();
    const loaded = bareLoadedModel(model);
    const two = new Float32Array([1, 2, 3, 4, 4, 3, 2, 1]);
    const flipped: MapArray = { data: new Float32Array([0.3, 0.5, 0.9, 0.1]), height: 2, width: 2 };
    const rows = await leakFree('insertion', () => scoreWithModel(insertion.spec, loaded, arrayInputs(two, [2, 2, 2, 1]), async (i) => [map, flipped][i], { steps: 4, baseline: 'blur', maxPerturbed: 1, score: 'logit' }));
    // The blurred baseline of a 2×2 image under an 11×11 σ=5 kernel with zero padding: each pixel a weighted mean of all four, weights from the kernel's centre.
    const g = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / 50));
    const total = g.reduce((a, c) => a + c, 0) ** 2;
    const k = (dy: number, dx: number) => (g[5 + dy] * g[5 + dx]) / total;
    const blurred = (x: number[]) => [0, 1, 2, 3].map((p) => [0, 1, 2, 3].reduce((s, q) => s + x[q] * k(Math.floor(q / 2) - Math.floor(p / 2), (q % 2) - (p % 2)), 0));
    for (const [i, x, order] of [[0, [1, 2, 3, 4], [1, 2, 3, 0]], [1, [4, 3, 2, 1], [2, 1, 0, 3]]] as const) {
      const state = blurred([...x]);
      const curve = [state.reduce((a, v) => a + v, 0)];
      for (const p of order) {
        state[p] = x[p];
        curve.push(state.reduce((a, v) => a + v, 0));
      }
      const got = causalColumns({ steps: 4 }).slice(1).map((col) => rows[i][col] as number);
      got.forEach((v, s) => assert.ok(Math.abs(v - curve[s]) < 1e-5, `image ${i} step ${s}: ${v}, by hand ${curve[s]}`));
    }
    model.dispose();
  });

  it('classScores softmaxes logits once and reads the predicted class', async () => {
    const model = toy();
    const loaded = bareLoadedModel(model);
    const x = tf.tensor4d([1, 1, 1, 1], [1, 2, 2, 1]);
    assert.ok(Math.abs((await classScores(loaded, x, [0], 'softmax'))[0] - 1 / (1 + Math.exp(-4))) < 1e-6);
    assert.equal((await classScores(loaded, x, [1], 'logit'))[0], 0);
    x.dispose();
    loaded.engine.dispose();
    model.dispose();
  });
});
