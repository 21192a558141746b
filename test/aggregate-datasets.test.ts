/**
 * Aggregate, verdicts and charts of a sweep with two dataset variants: every
 * table gets a leading dataset column and groups per variant, checked against
 * sums over the raw rows; the decision scheme judges each variant × model.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { aggregate, type AggregateCell } from '../src/core/report/aggregate.ts';
import { decide, decisionRows } from '../src/core/report/decision.ts';
import type { ResultRow } from '../src/core/plugins/types.ts';
import type { SplitResult } from '../src/core/stages/split.ts';
import { Store } from '../src/core/store/store.ts';
import { confusionMatrices } from '../src/plugins/charts/confusion-matrices.ts';
import { localisationByMethod } from '../src/plugins/charts/localisation-by-method.ts';
import { tempDir } from './helpers.ts';

const classes = ['cat', 'dog'];
const DATASETS = ['clean', 'marked'] as const;
const FOLDS = [1, 2];
/** Test images of each fold: id → true class. */
const TEST: Record<number, [string, number][]> = {
  1: [
    ['a', 0],
    ['b', 1],
    ['c', 1],
  ],
  2: [
    ['d', 0],
    ['e', 0],
    ['f', 1],
  ],
};
/** Predicted classes: the clean model misses one image, the marked one none. */
const PREDICTED: Record<(typeof DATASETS)[number], Record<string, number>> = {
  clean: { a: 0, b: 1, c: 0, d: 0, e: 0, f: 1 },
  marked: { a: 0, b: 1, c: 1, d: 0, e: 0, f: 1 },
};
/** Graded Hit Rate and top / background coverage per image: the marked model looks elsewhere. */
const hitRate = (dataset: string, id: string) => (dataset === 'clean' ? 3 - (id.charCodeAt(0) % 2) : -1 + (id.charCodeAt(0) % 3));
const coverage = (dataset: string, id: string) => (dataset === 'clean' ? { top: 0.6, background: 0.1 + id.charCodeAt(0) / 1000 } : { top: 0.2, background: 0.3 });

type Row = Record<string, string | number | null>;

describe('aggregate: two dataset variants', () => {
  let out = '';
  const read = (name: string) => JSON.parse(readFileSync(path.join(out, `${name}.json`), 'utf8')) as Row[];

  before(async () => {
    const root = tempDir();
    const store = new Store(path.join(root, 'cache'));
    const cells: AggregateCell[] = [];
    const splits: { dataset: string; dir: string }[] = [];
    const write = (stage: 'predict' | 'score', key: string, file: string, data: unknown) => {
      mkdirSync(store.dir(stage, key), { recursive: true });
      writeFileSync(path.join(store.dir(stage, key), file), JSON.stringify(data));
    };
    for (const dataset of DATASETS) {
      const dir = path.join(root, `split-${dataset}`);
      mkdirSync(dir);
      const balance = FOLDS.flatMap((fold) =>
        classes.flatMap((cls, c) => (['train', 'val', 'test'] as const).map((part) => ({ fold, part, class: cls, count: part === 'test' ? TEST[fold].filter(([, label]) => label === c).length : 1 }))),
      );
      writeFileSync(path.join(dir, 'split.json'), JSON.stringify({ folds: [], balance } satisfies SplitResult));
      splits.push({ dataset, dir });
      for (const fold of FOLDS) {
        const rows = TEST[fold].map(([id, label]) => ({ id, label, predicted: PREDICTED[dataset][id], probabilities: [0.5, 0.5] }));
        write('predict', `p-${dataset}-${fold}`, 'predictions.json', { classes, rows });
        cells.push({ key: `p-${dataset}-${fold}`, stage: 'predict', dataset, model: 'm', fold });
        write('score', `h-${dataset}-${fold}`, 'rows.json', TEST[fold].map(([id]) => ({ id, graded: hitRate(dataset, id), binary: hitRate(dataset, id) >= 2 })));
        cells.push({ key: `h-${dataset}-${fold}`, stage: 'score', dataset, model: 'm', fold, explainer: 'gradcam', metric: 'hit-rate' });
        write('score', `c-${dataset}-${fold}`, 'rows.json', TEST[fold].map(([id]) => ({ id, ...coverage(dataset, id) })));
        cells.push({ key: `c-${dataset}-${fold}`, stage: 'score', dataset, model: 'm', fold, explainer: 'gradcam', metric: 'layer-coverage' });
      }
    }
    out = path.join(root, 'out');
    const variants = [
      ...DATASETS.map((label) => ({ kind: 'dataset' as const, label, id: 'points', params: { dir: label } })),
      { kind: 'architecture' as const, label: 'm', id: 'centroid', params: {} },
      { kind: 'explainer' as const, label: 'gradcam', id: 'gradcam', params: {} },
      { kind: 'metric' as const, label: 'hit-rate', id: 'hit-rate', params: {} },
      { kind: 'metric' as const, label: 'layer-coverage', id: 'layer-coverage', params: {} },
    ];
    await aggregate({ cells, splits, variants }, store, out);
  });

  it('classification: a row per dataset variant × model × fold, the dataset column first', () => {
    const rows = read('classification');
    assert.deepEqual(Object.keys(rows[0]).slice(0, 3), ['dataset', 'model', 'fold']);
    for (const dataset of DATASETS) {
      for (const fold of FOLDS) {
        const row = rows.find((r) => r.dataset === dataset && r.fold === fold)!;
        const right = TEST[fold].filter(([id, label]) => PREDICTED[dataset][id] === label).length;
        assert.equal(row.accuracy, right / TEST[fold].length, `${dataset} fold ${fold}`);
      }
    }
    const summary = read('classification-summary');
    assert.deepEqual(
      summary.map((r) => [r.dataset, r.model, r.folds]),
      [
        ['clean', 'm', 2],
        ['marked', 'm', 2],
      ],
    );
    assert.equal(summary[1].accuracy, 1);
    assert.ok(Math.abs(Number(summary[0].accuracy) - (2 / 3 + 1) / 2) < 1e-12);
    assert.equal(read('confusion-total').filter((r) => r.dataset === 'clean' && r.true === 'dog' && r.predicted === 'cat')[0].count, 1);
  });

  it('summary-over-folds: means of the fold means of each variant’s raw rows', () => {
    const rows = read('summary-over-folds');
    for (const dataset of DATASETS) {
      const foldMeans = FOLDS.map((fold) => TEST[fold].reduce((sum, [id]) => sum + hitRate(dataset, id), 0) / TEST[fold].length);
      const row = rows.find((r) => r.dataset === dataset && r.metric === 'hit-rate' && r.measure === 'graded')!;
      assert.ok(Math.abs(Number(row.mean) - (foldMeans[0] + foldMeans[1]) / 2) < 1e-12, dataset);
      assert.equal(row.folds, 2);
    }
  });

  it('summary-by-class and folds: joined and counted within each variant', () => {
    const byClass = read('summary-by-class').filter((r) => r.metric === 'hit-rate' && r.measure === 'graded');
    assert.equal(byClass.length, 4);
    for (const row of byClass) assert.equal(row.n, 3, `${row.dataset} ${row.class}: each of the 6 test images once, not once per variant`);
    const folds = read('folds');
    assert.deepEqual(Object.keys(folds[0]).slice(0, 3), ['dataset', 'fold', 'class']);
    assert.equal(folds.length, 8);
  });

  it('verdicts: one per dataset variant × model, from that variant’s numbers', () => {
    const tables = Object.fromEntries(['classification-summary', 'classification-by-class', 'summary-over-folds', 'variants'].map((name) => [name, read(name) as ResultRow[]]));
    const decisions = decide(tables, { ...decideConfig, accuracy: 0.8 })!;
    assert.deepEqual(
      decisions.models.map((m) => [m.dataset, m.model, m.verdict]),
      [
        ['clean', 'm', 'trusted'],
        ['marked', 'm', 'over-learned'],
      ],
    );
    assert.deepEqual(decisions.explainers.map((f) => f.dataset), ['clean', 'marked']);
    assert.deepEqual(Object.keys(decisionRows(decisions)[0]).slice(0, 3), ['dataset', 'model', 'verdict']);
  });

  it('charts: each model × dataset variant is a series of its own', () => {
    const tables = Object.fromEntries(['confusion-total', 'summary-over-folds', 'variants'].map((name) => [name, read(name) as ResultRow[]]));
    const models = (spec: Record<string, unknown> | null) => [...new Set(((spec!.data as { values: { model: string }[] }).values).map((v) => v.model))];
    assert.deepEqual(models(localisationByMethod.spec(tables, {})), ['m · clean', 'm · marked']);
    assert.deepEqual(models(confusionMatrices.spec(tables, {})), ['m · clean', 'm · marked']);
  });
});

const decideConfig = {
  accuracy: 0.9,
  hitRate: { metric: 'hit-rate', measure: 'graded', min: 2 },
  coverage: { metric: 'layer-coverage', top: 'top', background: 'background', minRatio: 1.5 },
  reliability: { metric: 'confidence-change', params: {}, drop: 'drop', maxDrop: 0.5, increase: 'increase', minIncrease: 0.1 },
};
