/**
 * The map-only metrics in a real sweep through the CLI: synthetic-hfus
 * (non-square images, 48×64, with layer maps) → small-cnn (one epoch, wasm,
 * 32×32 input, so the maps are resized onto the layer maps) → Grad-CAM →
 * the seven map metrics. Checks that every test image gets a row with the
 * plugin's columns and plausible values; the numbers themselves are checked
 * against the study's formulas in layer-metrics.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hitRateMetric } from '../src/plugins/metrics/hit-rate.ts';
import { iouMetric } from '../src/plugins/metrics/iou.ts';
import { layerCoverageMetric } from '../src/plugins/metrics/layer-coverage.ts';
import { pixelAucMetric } from '../src/plugins/metrics/pixel-auc.ts';
import { pointingGameMetric } from '../src/plugins/metrics/pointing-game.ts';
import { relevanceMassMetric } from '../src/plugins/metrics/relevance-mass.ts';
import { relevanceRankMetric } from '../src/plugins/metrics/relevance-rank.ts';
import { cli, tempDir } from './helpers.ts';

const PLUGINS = [hitRateMetric, layerCoverageMetric, iouMetric, pointingGameMetric, relevanceMassMetric, relevanceRankMetric, pixelAucMetric];

const MANIFEST = `name: maps
dataset:
  source: synthetic-hfus
  params: { perClass: 4, size: [48, 64], seed: 1 }
  imageSize: [32, 32]
folds: { k: 2, seed: 1, only: [1] }
training: { epochs: 1, batchSize: 8, seed: 1 }
models:
  - { id: small-cnn, params: { width: 4, blocks: 2 } }
explainers:
  - gradcam
metrics:
${PLUGINS.map((p) => `  - ${p.id}`).join('\n')}
execution: { backend: wasm, workers: { gpu: 1 } }
`;

interface ScoreRecord {
  model: string;
  fold: number;
  explainer: string;
  metric: string;
  measure: string;
  id: string;
  value: number | null;
}

describe('map metrics end to end', () => {
  it('scores Grad-CAM maps of a small-cnn sweep against the synthetic layer maps', () => {
    const dir = tempDir('salgrid-map-metrics-e2e-');
    writeFileSync(path.join(dir, 'sweep.yaml'), MANIFEST);
    const result = cli(['run', 'sweep.yaml'], dir, {}, 900_000);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const scores = JSON.parse(readFileSync(path.join(dir, 'runs/maps/results/scores.json'), 'utf8')) as ScoreRecord[];
    const images = new Set(scores.map((s) => s.id));
    // k = 2 over 16 images: 8 test images in fold 1.
    assert.equal(images.size, 8);
    for (const plugin of PLUGINS) {
      const rows = scores.filter((s) => s.metric === plugin.id);
      assert.deepEqual([...new Set(rows.map((r) => r.measure))].sort(), [...plugin.columns()].sort(), plugin.id);
      assert.equal(rows.length, plugin.columns().length * images.size, plugin.id);
      assert.ok(rows.every((r) => r.explainer === 'gradcam' && r.model === 'small-cnn' && r.fold === 1));
    }
    const values = (metric: string, measure: string) => scores.filter((s) => s.metric === metric && s.measure === measure).map((s) => s.value);
    // Every synthetic image has a layer map and every class a 255 region (ST: its lesion), so only a
    // map with no positive value could give nulls: Grad-CAM of a one-epoch model may be all zero.
    const nonNull = values('hit-rate', 'graded').filter((v): v is number => v !== null);
    assert.ok(nonNull.length > 0, 'some map has a peak');
    assert.ok(nonNull.every((v) => v >= -1 && v <= 3));
    for (const [metric, measure] of [['layer-coverage', 'top'], ['relevance-mass', 'mass'], ['relevance-rank', 'rank'], ['pixel-auc', 'auc'], ['iou', 'iou@0.50:255']]) {
      for (const v of values(metric, measure)) assert.ok(v === null || (v >= 0 && v <= 1), `${metric} ${measure}: ${v}`);
    }
    for (const v of values('pointing-game', 'hit')) assert.ok(v === null || v === 0 || v === 1);
    // Nulls come with their warning, once per score task.
    const nulls = values('hit-rate', 'graded').length - nonNull.length;
    if (nulls > 0) assert.match(result.stderr + result.stdout, /hit-rate: \d+ of 8 images have a map with no positive value/);
  });
});
