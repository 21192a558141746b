/**
 * The seed study's layer-map measures (Hit Rate, layer coverage, IoU of
 * thresholded maps) against `golden/layer-metrics/expected.json`, values
 * computed in numpy from the study's own MATLAB formulas: one test per image
 * and measure, to 1e-9, nulls where it has nulls. Each image goes through
 * the plugins' array path (`scoreImage`); the file path (maps as .npy, layer
 * maps as PNG, through `score`) is checked on all images at once.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { DatasetItem, ScoreContext, ScoreRow } from '../src/core/plugins/types.ts';
import { mapPath } from '../src/core/stages/maps.ts';
import { writePng } from '../src/core/io/image-io.ts';
import type { Grid, MapMetricPlugin } from '../src/core/tensor/map-metric.ts';
import { readNpy, writeNpy } from '../src/core/io/npy.ts';
import { hitRateMetric } from '../src/plugins/metrics/hit-rate.ts';
import { iouColumn, iouMetric } from '../src/plugins/metrics/iou.ts';
import { layerCoverageMetric } from '../src/plugins/metrics/layer-coverage.ts';
import { ROOT, tempDir } from './helpers.ts';

const DIR = path.join(ROOT, 'test', 'fixtures', 'golden', 'layer-metrics');
const TOLERANCE = 1e-9;

interface ExpectedRow {
  image: number;
  peak_pixels: number;
  hit_rate_graded: number | null;
  hit_rate_binary: number | null;
  coverage_top: number | null;
  coverage_background: number | null;
  coverage_weighted: number | null;
  /** `<threshold>/<level>`, level 0 meaning every value outside the layers. */
  iou: Record<string, number | null>;
}

const expected = JSON.parse(readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as { rows: ExpectedRow[] };
const heatmaps = await readNpy(path.join(DIR, 'heatmap.npy'));
const slms = await readNpy(path.join(DIR, 'slm.npy'));
const [count, height, width] = heatmaps.shape;

function image(array: typeof heatmaps, i: number): Grid {
  return { height, width, data: array.data.subarray(i * height * width, (i + 1) * height * width) };
}

function close(actual: unknown, want: number | null, what: string): void {
  if (want === null) {
    assert.equal(actual, null, `${what}: expected null, got ${actual}`);
    return;
  }
  assert.equal(typeof actual, 'number', `${what}: expected ${want}, got ${actual}`);
  assert.ok(Math.abs((actual as number) - want) <= TOLERANCE, `${what}: expected ${want}, got ${actual} (difference ${(actual as number) - want})`);
}

/** expected.json's IoU key → salgrid's column: level 0 is the region outside every listed level, `other`. */
function iouKeyToColumn(key: string): string {
  const [threshold, level] = key.split('/');
  return iouColumn(Number(threshold), level === '0' ? 'other' : level);
}

const score = (plugin: MapMetricPlugin, i: number) => plugin.scoreImage(image(heatmaps, i), image(slms, i)).values;

describe('layer metrics: the study\'s golden values', () => {
  it('has the golden images', () => {
    assert.equal(count, expected.rows.length);
    assert.deepEqual(slms.shape, heatmaps.shape);
  });

  for (const row of expected.rows) {
    const i = row.image;
    describe(`image ${i}`, () => {
      it('hit-rate peakPixels', () => assert.equal(score(hitRateMetric, i).peakPixels, row.peak_pixels));
      it('hit-rate graded', () => close(score(hitRateMetric, i).graded, row.hit_rate_graded, 'graded'));
      it('hit-rate binary', () => close(score(hitRateMetric, i).binary, row.hit_rate_binary, 'binary'));
      it('layer-coverage top', () => close(score(layerCoverageMetric, i).top, row.coverage_top, 'top'));
      it('layer-coverage background', () => close(score(layerCoverageMetric, i).background, row.coverage_background, 'background'));
      it('layer-coverage weighted', () => close(score(layerCoverageMetric, i).weighted, row.coverage_weighted, 'weighted'));
      it('iou (every threshold × level)', () => {
        const values = score(iouMetric, i);
        const keys = Object.keys(row.iou);
        assert.equal(keys.length, 50);
        // Same columns, in the order of expected.json (thresholds descending, levels by decreasing score).
        assert.deepEqual(Object.keys(values), keys.map(iouKeyToColumn));
        for (const key of keys) close(values[iouKeyToColumn(key)], row.iou[key], `iou ${key}`);
      });
    });
  }

  it('gives the same values from files: maps as .npy in an explain artifact, layer maps as PNG', async () => {
    const dir = tempDir('salgrid-layer-metrics-');
    const items: DatasetItem[] = [];
    for (let i = 0; i < count; i++) {
      const id = `img${i}.png`;
      const layerMap = path.join(dir, 'layer-maps', id);
      await writePng(layerMap, { width, height, channels: 1, data: Uint8Array.from(image(slms, i).data) });
      await writeNpy(mapPath(path.join(dir, 'explain'), id), { dtype: 'float32', shape: [height, width], data: Float32Array.from(image(heatmaps, i).data) });
      items.push({ id, label: 0, image: id, layerMap });
    }
    const warnings: string[] = [];
    const ctx = (params: Record<string, unknown>): ScoreContext<any> => ({
      params,
      out: dir,
      manifestDir: dir,
      progress: () => {},
      warn: (message) => warnings.push(message),
      signal: new AbortController().signal,
      writeFile: async () => {},
      data: { fold: 1, classes: ['a'], train: [], val: [], test: items, resolve: (p) => p, imageSize: [height, width] },
      items,
      mapsDir: path.join(dir, 'explain'),
      explainer: { id: 'test', params: {} },
    });
    const rows = async (plugin: MapMetricPlugin): Promise<ScoreRow[]> => plugin.score(ctx({}));
    const [hits, coverage, ious] = await Promise.all([rows(hitRateMetric), rows(layerCoverageMetric), rows(iouMetric)]);
    for (const row of expected.rows) {
      const i = row.image;
      assert.equal(hits[i].id, `img${i}.png`);
      close(hits[i].graded, row.hit_rate_graded, `file image ${i} graded`);
      close(hits[i].binary, row.hit_rate_binary, `file image ${i} binary`);
      close(coverage[i].top, row.coverage_top, `file image ${i} top`);
      close(coverage[i].background, row.coverage_background, `file image ${i} background`);
      close(coverage[i].weighted, row.coverage_weighted, `file image ${i} weighted`);
      for (const [key, want] of Object.entries(row.iou)) close(ious[i][iouKeyToColumn(key)], want, `file image ${i} iou ${key}`);
    }
    assert.deepEqual(warnings, []);
  });
});
