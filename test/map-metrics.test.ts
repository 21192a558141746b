/**
 * Map-only metrics on hand-made maps: the Quantus localisation measures
 * (values derived by hand in the comments), the helper's grid alignment,
 * normalisation and levels, and the null/warning behaviours.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import type { DatasetItem, ScoreContext } from '../src/core/plugins/types.ts';
import { mapPath } from '../src/core/stages/maps.ts';
import { writePng } from '../src/core/io/image-io.ts';
import { alignMap, layerGrid, normaliseMap, parseLevels, quantisedLevels, resizeBilinear, type Grid, type MapMetricPlugin } from '../src/core/tensor/map-metric.ts';
import { writeNpy } from '../src/core/io/npy.ts';
import { seededRandom } from '../src/core/random.ts';
import { hitRate, hitRateMetric } from '../src/plugins/metrics/hit-rate.ts';
import { iou, iouMetric } from '../src/plugins/metrics/iou.ts';
import { layerCoverage, layerCoverageMetric } from '../src/plugins/metrics/layer-coverage.ts';
import { pixelAuc, pixelAucMetric } from '../src/plugins/metrics/pixel-auc.ts';
import { pointingGame, pointingGameMetric } from '../src/plugins/metrics/pointing-game.ts';
import { relevanceMass, relevanceMassMetric } from '../src/plugins/metrics/relevance-mass.ts';
import { kthLargest, relevanceRank, relevanceRankMetric } from '../src/plugins/metrics/relevance-rank.ts';
import { tempDir } from './helpers.ts';

/** A Grid with its values in a plain array, to build variants with `map`. */
type ArrayGrid = Grid & { data: number[] };

const ALL: MapMetricPlugin[] = [hitRateMetric, layerCoverageMetric, iouMetric, pointingGameMetric, relevanceMassMetric, relevanceRankMetric, pixelAucMetric];

/**
 * A 3×4 layer map (3 rows, 4 columns), not symmetric:
 *   255 255   0   0
 *   128  64  32   0
 *     0   0  17 255
 * top (255) = (0,0) (0,1) (2,3): 3 pixels; 128 = (1,0); 64 = (1,1); 32 = (1,2);
 * outside (0 and 17, "other") = (0,2) (0,3) (1,3) (2,0) (2,1) (2,2): 6 pixels.
 */
const LAYERS: ArrayGrid = { height: 3, width: 4, data: [255, 255, 0, 0, 128, 64, 32, 0, 0, 0, 17, 255] };

/**
 * A map on the same grid, max 8, so m = v / 8 with quantize: false:
 *   8 2 1 0
 *   4 2 2 0
 *   0 1 2 8
 */
const MAP: ArrayGrid = { height: 3, width: 4, data: [8, 2, 1, 0, 4, 2, 2, 0, 0, 1, 2, 8] };
const RAW = { quantize: false };

const grid = (levels = parseLevels()) => layerGrid(LAYERS, levels);
const m = (map: Grid = MAP) => normaliseMap(map.data, false) as Float64Array;
const near = (actual: number | null, want: number, what = '') => assert.ok(actual !== null && Math.abs(actual - want) < 1e-12, `${what} expected ${want}, got ${actual}`);

describe('Quantus localisation measures on a hand-made map', () => {
  it('pointing-game: a pixel holding the maximum lies in the top region', () => {
    // Peaks (value 8) at (0,0) and (2,3), both 255 → hit.
    assert.equal(pointingGame(m(), grid()), 1);
    // Only peak at (2,2), level 17 (outside) → miss.
    assert.equal(pointingGame(m({ ...MAP, data: [1, 2, 1, 0, 4, 2, 2, 0, 0, 1, 9, 8] }), grid()), 0);
    // Two peaks, one at (1,0) (128), one at (0,1) (255): one in the region is enough.
    assert.equal(pointingGame(m({ ...MAP, data: [1, 9, 1, 0, 9, 2, 2, 0, 0, 1, 2, 8] }), grid()), 1);
    assert.deepEqual(pointingGameMetric.scoreImage(MAP, LAYERS, RAW).values, { hit: 1 });
  });

  it('relevance-mass: share of the positive mass inside the top region', () => {
    // Mass 8+2+1+0+4+2+2+0+0+1+2+8 = 30; inside (0,0) (0,1) (2,3): 8+2+8 = 18 → 18/30 = 0.6.
    near(relevanceMass(m(), grid()), 0.6);
    // Negative values carry no mass: -8 at (0,3) changes nothing.
    near(relevanceMass(m({ ...MAP, data: [8, 2, 1, -8, 4, 2, 2, 0, 0, 1, 2, 8] }), grid()), 0.6);
    near(relevanceMassMetric.scoreImage(MAP, LAYERS, RAW).values.mass, 0.6);
  });

  it('relevance-rank: share of the |S| highest pixels inside S', () => {
    // |S| = 3; the three highest are 8 (0,0), 8 (2,3), 4 (1,0): two inside → 2/3.
    near(relevanceRank(m(), grid()), 2 / 3);
    // With (1,0) = 2 the third place is tied among the five 2s at (0,1) (1,0) (1,1) (1,2) (2,2),
    // one of them inside: 2 sure hits + 1 place × 1/5 → (2 + 0.2) / 3.
    near(relevanceRank(m({ ...MAP, data: [8, 2, 1, 0, 2, 2, 2, 0, 0, 1, 2, 8] }), grid()), 2.2 / 3);
    near(relevanceRankMetric.scoreImage(MAP, LAYERS, RAW).values.rank, 2 / 3);
  });

  it('relevance-rank equals the top-|S| share of a sort where there are no ties', () => {
    const random = seededRandom(3);
    const layers = layerGrid({ height: 20, width: 30, data: Array.from({ length: 600 }, () => (random() < 0.2 ? 255 : 0)) }, parseLevels());
    const values = Float64Array.from({ length: 600 }, () => random());
    const order = [...values.keys()].sort((a, b) => values[b] - values[a]);
    const k = layers.topSize;
    const share = order.slice(0, k).filter((i) => layers.top[i]).length / k;
    near(relevanceRank(values, layers), share);
  });

  it('pixel-auc: chance that a region pixel outscores an outside one, ties ½', () => {
    // Inside: 8, 2, 8. Outside (the other 9 pixels): 0 0 0 1 1 2 2 2 4.
    // Each 8 beats all 9; the 2 beats 0 0 0 1 1 (5) and ties 2 2 2 (3 × ½) → 6.5.
    // (9 + 9 + 6.5) / (3 × 9) = 24.5 / 27.
    near(pixelAuc(m(), grid()), 24.5 / 27);
    near(pixelAucMetric.scoreImage(MAP, LAYERS, RAW).values.auc, 24.5 / 27);
    // A constant map does not separate anything: 1/2.
    near(pixelAuc(new Float64Array(12).fill(1), grid()), 0.5);
  });

  it('pixel-auc matches counting every pair on random quantised maps', () => {
    const random = seededRandom(11);
    for (let trial = 0; trial < 5; trial++) {
      const layers = layerGrid({ height: 17, width: 23, data: Array.from({ length: 391 }, () => [255, 128, 0][Math.floor(random() * 3)]) }, parseLevels());
      const values = normaliseMap(Array.from({ length: 391 }, () => random() ** 3), true) as Float64Array;
      let wins = 0;
      let pairs = 0;
      for (let i = 0; i < 391; i++) {
        if (!layers.top[i]) continue;
        for (let j = 0; j < 391; j++) {
          if (layers.top[j]) continue;
          pairs++;
          wins += values[i] > values[j] ? 1 : values[i] === values[j] ? 0.5 : 0;
        }
      }
      near(pixelAuc(values, layers), wins / pairs, `trial ${trial}`);
    }
  });

  it('count levels on quantised maps exactly as they sort unquantised ones', () => {
    // Both measures depend only on the order of the values. Scaled by 0.999 a quantised map keeps its
    // order and ties but is no longer made of k/255 values, so it takes the sorting / quickselect path.
    const random = seededRandom(13);
    for (let trial = 0; trial < 5; trial++) {
      const layers = layerGrid({ height: 31, width: 17, data: Array.from({ length: 527 }, () => [255, 64, 0][Math.floor(random() * 3)]) }, parseLevels());
      const q = normaliseMap(Array.from({ length: 527 }, () => random() ** 2), true) as Float64Array;
      const scaled = q.map((v) => v * 0.999);
      assert.ok(quantisedLevels(q) !== null && quantisedLevels(scaled) === null);
      assert.equal(relevanceRank(q, layers), relevanceRank(scaled, layers), `rank, trial ${trial}`);
      assert.equal(pixelAuc(q, layers), pixelAuc(scaled, layers), `auc, trial ${trial}`);
      const sorted = [...q].sort((a, b) => b - a);
      for (const k of [1, 2, 50, 263, 527]) assert.equal(kthLargest(q, k), sorted[k - 1]);
      for (const k of [1, 2, 50, 263, 527]) assert.equal(kthLargest(scaled, k), sorted[k - 1] * 0.999);
    }
  });

  it('are null where the top region is empty, and pixel-auc also where it is the whole image', () => {
    const noTop: ArrayGrid = { ...LAYERS, data: LAYERS.data.map((v) => (v === 255 ? 128 : v)) };
    for (const plugin of [pointingGameMetric, relevanceMassMetric, relevanceRankMetric, pixelAucMetric]) {
      const { values, problem } = plugin.scoreImage(MAP, noTop, RAW);
      assert.equal(problem, undefined);
      assert.ok(Object.values(values).every((v) => v === null), `${plugin.id}: ${JSON.stringify(values)}`);
    }
    const allTop: ArrayGrid = { ...LAYERS, data: LAYERS.data.map(() => 255) };
    assert.equal(pixelAucMetric.scoreImage(MAP, allTop).values.auc, null);
    assert.equal(pointingGameMetric.scoreImage(MAP, allTop).values.hit, 1);
    assert.equal(relevanceRankMetric.scoreImage(MAP, allTop).values.rank, 1);
  });
});

describe('the study\'s measures on a hand-made map', () => {
  it('hit-rate: graded and binary over the peak pixels', () => {
    // Peaks (9) at (0,0) 255 → +3 / +1, (1,0) 128 → +2 / 0, (2,2) 17 (outside) → −1 / −1.
    const map: Grid = { ...MAP, data: [9, 2, 1, 0, 9, 2, 2, 0, 0, 1, 9, 8] };
    const result = hitRate(m(map), grid());
    assert.equal(result.peakPixels, 3);
    near(result.graded, 4 / 3);
    near(result.binary, 0);
    assert.deepEqual(hitRateMetric.scoreImage(map, LAYERS).values, { graded: 4 / 3, binary: 0, peakPixels: 3 });
  });

  it('layer-coverage: top, background and weighted means of m', () => {
    // m = v/8. top: (1 + 0.25 + 1) / 3 = 0.75; outside: (0.125 + 0 + 0 + 0 + 0.125 + 0.25) / 6 = 0.5 / 6;
    // weighted: (1·2.25 + ½·0.5 (128) + ¼·0.25 (64)) / (3 + 1 + 1) = 2.5625 / 5.
    const result = layerCoverage(m(), grid());
    near(result.top, 0.75);
    near(result.background, 0.5 / 6);
    near(result.weighted, 2.5625 / 5);
    const noTop = layerGrid({ ...LAYERS, data: LAYERS.data.map((v) => (v === 255 ? 0 : v)) }, parseLevels());
    assert.equal(layerCoverage(m(), noTop).top, null);
  });

  it('iou: the mask m ≥ t against each region, null where the union is empty', () => {
    // t = 0.5: mask {(0,0), (1,0), (2,3)}; 255 region {(0,0), (0,1), (2,3)}: 2 / 4; 128 {(1,0)}: 1 / 3; 64: 0 / 4; 32: 0 / 4; other: 0 / 9.
    // t = 0.95: mask {(0,0), (2,3)}: 255: 2 / 3; 128: 0 / 3.
    const [half, high] = iou(m(), grid(), [0.5, 0.95]);
    assert.deepEqual(half, [2 / 4, 1 / 3, 0, 0, 0]);
    assert.deepEqual(high, [2 / 3, 0, 0, 0, 0]);
    // An empty mask against a level the map lacks: empty union → null.
    const absent = layerGrid(LAYERS, parseLevels({ '255': 3, '99': 1, other: -1 }));
    assert.deepEqual(iou(new Float64Array(12), absent, [0.5]), [[0, null, 0]]);
  });

  it('names its columns iou@<threshold>:<level value | other>', () => {
    const columns = iouMetric.columns();
    assert.equal(columns.length, 50);
    assert.deepEqual(columns.slice(0, 5), ['iou@0.95:255', 'iou@0.95:128', 'iou@0.95:64', 'iou@0.95:32', 'iou@0.95:other']);
    assert.equal(columns[49], 'iou@0.50:other');
    assert.deepEqual(iouMetric.columns({ thresholds: [0.925, 0.3], levels: { '1': 1, other: 0 } }), ['iou@0.925:1', 'iou@0.925:other', 'iou@0.30:1', 'iou@0.30:other']);
    assert.deepEqual(Object.keys(iouMetric.scoreImage(MAP, LAYERS).values), columns);
  });

  it('quantises as the study stored its maps: floor(255·m) / 255, negatives saturating at 0', () => {
    const q = normaliseMap([2, 1, 0.999, -1], true) as Float64Array;
    // 255·(1/2) = 127.5 → 127; 255·0.4995 = 127.37… → 127; −0.5 → 0.
    assert.deepEqual(Array.from(q), [1, 127 / 255, 127 / 255, 0]);
    assert.deepEqual(Array.from(normaliseMap([2, 1, -1], false) as Float64Array), [1, 0.5, -0.5]);
    // quantize changes the IoU mask: m = 0.5 passes t = 0.5 unquantised, 127/255 does not.
    const layers: Grid = { height: 1, width: 2, data: [255, 255] };
    assert.equal(iouMetric.scoreImage({ height: 1, width: 2, data: [2, 1] }, layers, { thresholds: [0.5], quantize: false }).values['iou@0.50:255'], 1);
    assert.equal(iouMetric.scoreImage({ height: 1, width: 2, data: [2, 1] }, layers, { thresholds: [0.5] }).values['iou@0.50:255'], 0.5);
  });

  it('reads levels for other datasets, e.g. a binary lesion mask', () => {
    const levels = parseLevels({ '1': 1, other: 0 });
    assert.deepEqual(levels.regions, ['1', 'other']);
    const mask: Grid = { height: 2, width: 2, data: [1, 0, 0, 0] };
    const map: Grid = { height: 2, width: 2, data: [5, 1, 1, 1] };
    assert.deepEqual(hitRateMetric.scoreImage(map, mask, { levels: { '1': 1, other: 0 } }).values, { graded: 1, binary: 1, peakPixels: 1 });
    const rejects = (param: Record<string, number>, pattern: RegExp) =>
      assert.throws(() => parseLevels(param), (error: Error) => isUserError(error) && pattern.test(error.message));
    rejects({ '255': 3 }, /"other"/);
    rejects({ other: 1 }, /no pixel value/);
    rejects({ '255': 1, other: 1 }, /two different scores/);
    rejects({ top: 1, other: 0 }, /not a pixel value/);
  });
});

describe('grid alignment', () => {
  it('resizes with half-pixel centres exactly as tfjs resizeBilinear(…, false, true)', () => {
    const random = seededRandom(5);
    for (const [h, w, H, W] of [[7, 11, 23, 16], [16, 16, 56, 56], [30, 20, 9, 13], [5, 9, 5, 4]]) {
      const data = Float32Array.from({ length: h * w }, () => random());
      const ours = resizeBilinear({ height: h, width: w, data }, H, W);
      const theirs = tf.image.resizeBilinear(tf.tensor4d(data, [1, h, w, 1]), [H, W], false, true).dataSync();
      for (let i = 0; i < ours.length; i++) assert.ok(Math.abs(ours[i] - theirs[i]) < 1e-6, `${h}×${w}→${H}×${W} at ${i}: ${ours[i]} vs ${theirs[i]}`);
    }
  });

  it('keeps a non-square, non-symmetric map aligned with its layer map (no transposition)', () => {
    // 2×3 map, peak at row 0, column 2 (top right), onto a 4×6 layer map whose 255 region is the
    // top-right 2×2 block. Upsampled, (0,5) samples the source exactly at (0,2): the only peak.
    const map: Grid = { height: 2, width: 3, data: [1, 2, 9, 3, 4, 5] };
    const layers: Grid = { height: 4, width: 6, data: [0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
    const aligned = alignMap(map, layers, false) as Float64Array;
    assert.equal(aligned.length, 24);
    assert.deepEqual([...aligned.keys()].filter((i) => aligned[i] === 1), [5]);
    assert.deepEqual(pointingGameMetric.scoreImage(map, layers).values, { hit: 1 });
    assert.deepEqual(hitRateMetric.scoreImage(map, layers).values, { graded: 3, binary: 1, peakPixels: 1 });
    // The same map transposed (3×2, peak at row 2, column 0) misses.
    const transposed: Grid = { height: 3, width: 2, data: [1, 3, 2, 4, 9, 5] };
    assert.deepEqual(pointingGameMetric.scoreImage(transposed, layers).values, { hit: 0 });
  });
});

describe('score tasks: files, nulls and warnings', () => {
  /** Writes maps (.npy) and layer maps (PNG) for `images` and returns a score context over them. */
  async function fixture(images: { id: string; map: Grid; layers?: Grid }[], params: Record<string, unknown> = {}) {
    const dir = tempDir('salgrid-map-metrics-');
    const items: DatasetItem[] = [];
    for (const { id, map, layers } of images) {
      await writeNpy(mapPath(path.join(dir, 'explain'), id), { dtype: 'float32', shape: [map.height, map.width], data: Float32Array.from(map.data) });
      let layerMap: string | undefined;
      if (layers) {
        layerMap = `layer-maps/${id}`;
        await writePng(path.join(dir, layerMap), { width: layers.width, height: layers.height, channels: 1, data: Uint8Array.from(layers.data) });
      }
      items.push({ id, label: 0, image: `images/${id}`, layerMap });
    }
    const warnings: string[] = [];
    const ctx: ScoreContext<any> = {
      params,
      out: dir,
      manifestDir: dir,
      progress: () => {},
      warn: (message) => warnings.push(message),
      signal: new AbortController().signal,
      writeFile: async () => {},
      data: { fold: 1, classes: ['a'], train: [], val: [], test: items, resolve: (p) => path.join(dir, p), imageSize: [3, 4] },
      items,
      mapsDir: path.join(dir, 'explain'),
      explainer: { id: 'gradcam', params: {} },
    };
    return { ctx, warnings };
  }

  it('reads a non-square map and PNG layer map in the same orientation', async () => {
    const { ctx, warnings } = await fixture([{ id: 'CG/a.png', map: MAP, layers: LAYERS }]);
    const [row] = await relevanceMassMetric.score({ ...ctx, params: { ...RAW } as any });
    assert.equal(row.id, 'CG/a.png');
    near(row.mass as number, 0.6);
    const [auc] = await pixelAucMetric.score({ ...ctx, params: { ...RAW } as any });
    near(auc.auc as number, 24.5 / 27);
    assert.deepEqual(warnings, []);
  });

  it('gives null for every measure of images without a layer map, with one warning per task', async () => {
    const images = [
      { id: 'a.png', map: MAP, layers: LAYERS },
      { id: 'b.png', map: MAP },
      { id: 'c.png', map: MAP },
      { id: 'd.png', map: MAP },
      { id: 'e.png', map: MAP },
    ];
    for (const plugin of ALL) {
      const { ctx, warnings } = await fixture(images);
      const rows = await plugin.score(ctx);
      assert.deepEqual(rows.map((r) => r.id), ['a.png', 'b.png', 'c.png', 'd.png', 'e.png']);
      const columns = plugin.columns();
      for (const row of rows.slice(1)) assert.deepEqual(row, { id: row.id, ...Object.fromEntries(columns.map((c) => [c, null])) });
      assert.ok(columns.some((c) => rows[0][c] !== null), `${plugin.id} scores the image with a layer map`);
      assert.equal(warnings.length, 1, `${plugin.id}: ${warnings.join(' | ')}`);
      assert.match(warnings[0], new RegExp(`^${plugin.id}: 4 of 5 images have no layer map \\(b\\.png, c\\.png, d\\.png, …\\)`));
    }
  });

  it('gives null and one warning for maps with no positive value', async () => {
    const zero: ArrayGrid = { ...MAP, data: MAP.data.map(() => 0) };
    const negative: ArrayGrid = { ...MAP, data: MAP.data.map((v) => -1 - v) };
    for (const plugin of ALL) {
      const { ctx, warnings } = await fixture([
        { id: 'zero.png', map: zero, layers: LAYERS },
        { id: 'negative.png', map: negative, layers: LAYERS },
        { id: 'fine.png', map: MAP, layers: LAYERS },
      ]);
      const rows = await plugin.score(ctx);
      for (const row of rows.slice(0, 2)) assert.ok(Object.entries(row).every(([k, v]) => k === 'id' || v === null), `${plugin.id}: ${JSON.stringify(row)}`);
      assert.deepEqual(warnings, [`${plugin.id}: 2 of 3 images have a map with no positive value (zero.png, negative.png); their ${plugin.id} measures are null.`]);
    }
  });

  it('has params schemas whose defaults the helper fills in', () => {
    for (const plugin of ALL) {
      const properties = (plugin.params as { properties: Record<string, { default?: unknown }> }).properties;
      assert.deepEqual(properties.levels.default, { '255': 3, '128': 2, '64': 1, '32': 0, other: -1 });
      assert.equal(properties.quantize.default, true);
      assert.ok(Object.values(properties).every((p) => p.default !== undefined), `${plugin.id} has a default for every param`);
      assert.equal(plugin.needsModel, undefined, `${plugin.id} runs in the cpu pool`);
    }
    assert.deepEqual(iouMetric.resolveParams({}).thresholds, [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]);
  });
});
