import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { aggregate } from '../src/core/report/aggregate.ts';
import type { PredictionsFile } from '../src/core/stages/artifacts.ts';
import type { SplitResult } from '../src/core/stages/split.ts';
import { Store } from '../src/core/store/store.ts';
import { cli, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

type Row = Record<string, string | number | null>;

const MEASURES = ['accuracy', 'precision', 'recall', 'f1', 'macroPrecision', 'macroRecall', 'macroF1'] as const;

function close(actual: unknown, expected: number, what: string): void {
  assert.equal(typeof actual, 'number', `${what}: ${String(actual)} is not a number`);
  assert.ok(Math.abs((actual as number) - expected) < 1e-12, `${what}: ${String(actual)} ≠ ${expected}`);
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
/** Sample standard deviation (n − 1), as arquero's stdev. */
const sd = (values: number[]) => Math.sqrt(values.reduce((a, v) => a + (v - mean(values)) ** 2, 0) / (values.length - 1));

/**
 * Per fold classification values from the raw predictions, by the textbook
 * formulas (F1 as the harmonic mean of precision and recall, averages over the
 * per-class values) rather than the confusion-matrix ones classification.ts uses.
 */
function expected(file: PredictionsFile) {
  const classes = file.classes.map((_, c) => {
    const tp = file.rows.filter((r) => r.label === c && r.predicted === c).length;
    const support = file.rows.filter((r) => r.label === c).length;
    const predicted = file.rows.filter((r) => r.predicted === c).length;
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    return { precision, recall, f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0, support, predicted };
  });
  const n = file.rows.length;
  const weighted = (key: 'precision' | 'recall' | 'f1') => classes.reduce((sum, s) => sum + s.support * s[key], 0) / n;
  const macro = (key: 'precision' | 'recall' | 'f1') => mean(classes.map((s) => s[key]));
  return {
    classes,
    row: {
      accuracy: file.rows.filter((r) => r.label === r.predicted).length / n,
      precision: weighted('precision'),
      recall: weighted('recall'),
      f1: weighted('f1'),
      macroPrecision: macro('precision'),
      macroRecall: macro('recall'),
      macroF1: macro('f1'),
      n,
    },
  };
}

describe('aggregate: classification tables from the centroid fixture', () => {
  let dir = '';
  const results = (name: string) => JSON.parse(readFileSync(path.join(dir, 'runs/demo/results', `${name}.json`), 'utf8')) as Row[];
  const csvHeader = (name: string) => readFileSync(path.join(dir, 'runs/demo/results', `${name}.csv`), 'utf8').split('\n')[0];
  /** The predictions artifacts of the run, by "model/fold". */
  const predictions = new Map<string, PredictionsFile>();
  /** The score artifacts of the run: the raw rows with their grid cell. */
  const scoreArtifacts: { model: string; fold: number; explainer: string; metric: string; rows: Row[] }[] = [];
  /** Every numeric score value by model × explainer × metric × measure, each with its fold and image. */
  const rawValues = () => {
    const values = new Map<string, { fold: number; id: string; value: number }[]>();
    for (const artifact of scoreArtifacts) {
      for (const row of artifact.rows) {
        for (const [measure, value] of Object.entries(row)) {
          if (measure === 'id' || typeof value !== 'number') continue;
          const key = JSON.stringify([artifact.model, artifact.explainer, artifact.metric, measure]);
          values.set(key, [...(values.get(key) ?? []), { fold: artifact.fold, id: String(row.id), value }]);
        }
      }
    }
    return values;
  };

  before(() => {
    dir = tempDir();
    // One-dimensional points: class0 stands apart, class1 and class2 are the same noise, so the centroids
    // confuse them. Three images fewer of class0 make the classes unbalanced (weighted ≠ macro).
    makePointsDataset(path.join(dir, 'data'), { dims: 1 });
    for (const i of [3, 4, 5]) rmSync(path.join(dir, 'data/class0', `item0${i}.json`));
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ models: '  - centroid\n  - { id: centroid, params: { rate: 0.1 } }', explainers: '  - difference', metrics: '  - mass' }));
    const run = cli(['run', 'sweep.yaml'], dir);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const cache = path.join(dir, 'runs/cache/predict');
    for (const key of readdirSync(cache)) {
      const meta = JSON.parse(readFileSync(path.join(cache, key, 'meta.json'), 'utf8')) as { context: { model: string; fold: number } };
      predictions.set(`${meta.context.model}/${meta.context.fold}`, JSON.parse(readFileSync(path.join(cache, key, 'predictions.json'), 'utf8')) as PredictionsFile);
    }
    assert.equal(predictions.size, 6);
    const scoreCache = path.join(dir, 'runs/cache/score');
    for (const key of readdirSync(scoreCache)) {
      const meta = JSON.parse(readFileSync(path.join(scoreCache, key, 'meta.json'), 'utf8')) as { context: { model: string; fold: number; explainer: string; metric: string } };
      scoreArtifacts.push({ ...meta.context, rows: JSON.parse(readFileSync(path.join(scoreCache, key, 'rows.json'), 'utf8')) as Row[] });
    }
    assert.equal(scoreArtifacts.length, 6);
  });

  it('classification: weighted and macro precision, recall, F1 and accuracy per model × fold', () => {
    const table = results('classification');
    assert.equal(csvHeader('classification'), 'model,fold,accuracy,precision,recall,f1,macroPrecision,macroRecall,macroF1,n');
    assert.deepEqual(
      table.map((r) => `${r.model}/${r.fold}`),
      ['centroid[rate=0.1]/1', 'centroid[rate=0.1]/2', 'centroid[rate=0.1]/3', 'centroid[rate=0.5]/1', 'centroid[rate=0.5]/2', 'centroid[rate=0.5]/3'],
    );
    for (const row of table) {
      const want = expected(predictions.get(`${row.model}/${row.fold}`)!).row;
      for (const measure of MEASURES) close(row[measure], want[measure], `${row.model} fold ${row.fold} ${measure}`);
      assert.equal(row.n, want.n);
      close(row.recall, row.accuracy as number, 'weighted recall is accuracy');
      for (const measure of MEASURES) assert.ok((row[measure] as number) >= 0 && (row[measure] as number) <= 1, `${measure} is a fraction`);
    }
    // The data make this a real test: mistakes, unequal classes, and a class never predicted in some fold.
    assert.ok(table.some((r) => (r.accuracy as number) < 1));
    assert.ok(table.some((r) => Math.abs((r.precision as number) - (r.macroPrecision as number)) > 1e-6));
    assert.ok([...predictions.values()].some((file) => expected(file).classes.some((s) => s.predicted === 0)));
  });

  it('classification-by-class: precision, recall, F1 and support per model × fold × class', () => {
    const table = results('classification-by-class');
    assert.equal(csvHeader('classification-by-class'), 'model,fold,class,precision,recall,f1,support');
    assert.equal(table.length, 6 * 3);
    for (const row of table) {
      const file = predictions.get(`${row.model}/${row.fold}`)!;
      const want = expected(file).classes[file.classes.indexOf(row.class as string)];
      for (const measure of ['precision', 'recall', 'f1'] as const) close(row[measure], want[measure], `${row.model} fold ${row.fold} ${row.class} ${measure}`);
      assert.equal(row.support, want.support);
    }
    assert.deepEqual(
      table.slice(0, 3).map((r) => r.class),
      ['class0', 'class1', 'class2'],
    );
  });

  it('classification-summary: mean and sd over folds per model', () => {
    const table = results('classification-summary');
    assert.equal(csvHeader('classification-summary'), 'model,accuracy,accuracySd,precision,precisionSd,recall,recallSd,f1,f1Sd,folds');
    assert.deepEqual(
      table.map((r) => r.model),
      ['centroid[rate=0.1]', 'centroid[rate=0.5]'],
    );
    for (const row of table) {
      const folds = [1, 2, 3].map((fold) => expected(predictions.get(`${row.model}/${fold}`)!).row);
      for (const measure of ['accuracy', 'precision', 'recall', 'f1'] as const) {
        close(row[measure], mean(folds.map((f) => f[measure])), `${row.model} ${measure}`);
        close(row[`${measure}Sd`], sd(folds.map((f) => f[measure])), `${row.model} ${measure}Sd`);
      }
      assert.equal(row.folds, 3);
    }
  });

  it('confusion and confusion-total: counts per true × predicted class, every pair, rows true', () => {
    const confusion = results('confusion');
    assert.equal(csvHeader('confusion'), 'model,fold,true,predicted,count');
    assert.equal(confusion.length, 6 * 9);
    const total = results('confusion-total');
    assert.equal(csvHeader('confusion-total'), 'model,true,predicted,count');
    assert.equal(total.length, 2 * 9);
    for (const [cell, file] of predictions) {
      const [model, fold] = [cell.slice(0, cell.lastIndexOf('/')), Number(cell.slice(cell.lastIndexOf('/') + 1))];
      const rows = confusion.filter((r) => r.model === model && r.fold === fold);
      assert.deepEqual(
        rows.map((r) => `${r.true}>${r.predicted}`),
        file.classes.flatMap((t) => file.classes.map((p) => `${t}>${p}`)),
      );
      for (const row of rows) {
        const [t, p] = [file.classes.indexOf(row.true as string), file.classes.indexOf(row.predicted as string)];
        assert.equal(row.count, file.rows.filter((r) => r.label === t && r.predicted === p).length, `${cell} ${row.true}→${row.predicted}`);
      }
    }
    for (const row of total) {
      const sum = confusion.filter((r) => r.model === row.model && r.true === row.true && r.predicted === row.predicted).reduce((a, r) => a + (r.count as number), 0);
      assert.equal(row.count, sum);
    }
  });

  it('summary-over-folds: mean and sd of the fold means of the raw score rows, and the folds with a mean', () => {
    const table = results('summary-over-folds');
    assert.equal(csvHeader('summary-over-folds'), 'model,explainer,metric,measure,mean,sd,folds');
    const raw = rawValues();
    assert.equal(table.length, raw.size);
    for (const row of table) {
      const values = raw.get(JSON.stringify([row.model, row.explainer, row.metric, row.measure]))!;
      const foldMeans = [...new Set(values.map((v) => v.fold))].map((fold) => mean(values.filter((v) => v.fold === fold).map((v) => v.value)));
      const what = `${row.explainer} ${row.metric} ${row.measure}`;
      close(row.mean, mean(foldMeans), `${what} mean`);
      close(row.sd, sd(foldMeans), `${what} sd`);
      assert.equal(row.folds, foldMeans.length);
    }
    assert.ok(table.every((r) => r.folds === 3));
  });

  it('summary-by-class: mean, sd and n of the raw values of each true class, all folds together', () => {
    const table = results('summary-by-class');
    assert.equal(csvHeader('summary-by-class'), 'model,explainer,metric,measure,class,mean,sd,n');
    const raw = rawValues();
    assert.equal(table.length, raw.size * 3);
    for (const row of table) {
      // The points dataset names images <class>/<file>: the class straight from the id, not from the predictions.
      const values = raw.get(JSON.stringify([row.model, row.explainer, row.metric, row.measure]))!.filter((v) => v.id.startsWith(`${row.class}/`)).map((v) => v.value);
      const what = `${row.model} ${row.explainer} ${row.metric} ${row.measure} ${row.class}`;
      assert.equal(row.n, values.length, what);
      close(row.mean, mean(values), `${what} mean`);
      close(row.sd, sd(values), `${what} sd`);
    }
    assert.deepEqual(
      table.slice(0, 3).map((r) => r.class),
      ['class0', 'class1', 'class2'],
    );
  });

  it('predictions: true and predicted class and the predicted class’s probability per model × fold × image', () => {
    const table = results('predictions');
    assert.equal(csvHeader('predictions'), 'model,fold,id,true,predicted,confidence');
    assert.equal(table.length, [...predictions.values()].reduce((n, file) => n + file.rows.length, 0));
    for (const row of table) {
      const file = predictions.get(`${row.model}/${row.fold}`)!;
      const own = file.rows.find((r) => r.id === row.id)!;
      assert.equal(row.true, file.classes[own.label]);
      assert.equal(row.predicted, file.classes[own.predicted]);
      assert.equal(row.confidence, Math.max(...own.probabilities));
    }
  });

  it('variants: what each label stands for; training: empty for an architecture that keeps no history', () => {
    assert.deepEqual(
      results('variants').map((r) => [r.kind, r.label, r.id, JSON.parse(String(r.params)).rate ?? null]),
      [
        ['architecture', 'centroid[rate=0.5]', 'centroid', 0.5],
        ['architecture', 'centroid[rate=0.1]', 'centroid', 0.1],
        ['explainer', 'difference', 'difference', null],
        ['metric', 'mass', 'mass', null],
      ],
    );
    assert.deepEqual(results('training'), []);
  });

  it('the report shows the classification tables, fractions as percentages, and the summed confusion matrix', () => {
    const html = readFileSync(path.join(dir, 'runs/demo/report.html'), 'utf8');
    for (const title of ['Classification per fold', 'Classification per class and fold', 'Confusion matrix (summed over folds)']) assert.ok(html.includes(`<h3>${title}`), title);
    const accuracy = results('classification-summary')[0].accuracy as number;
    assert.ok(html.includes(`<td>${(100 * accuracy).toFixed(1)}%</td>`));
    assert.match(html, /<th>true \\ predicted<\/th><th>class0<\/th><th>class1<\/th><th>class2<\/th>/);
  });
});

describe('aggregate: hand-checked classification values and sklearn-style warnings', () => {
  it('computes the tables of two folds and warns of a class never predicted', async () => {
    const root = tempDir();
    const store = new Store(path.join(root, 'cache'));
    const classes = ['cat', 'dog', 'bird'];
    const write = (key: string, labels: number[], predicted: number[]) => {
      mkdirSync(store.dir('predict', key), { recursive: true });
      const rows = labels.map((label, i) => ({ id: `x${i}`, label, predicted: predicted[i], probabilities: [] }));
      writeFileSync(path.join(store.dir('predict', key), 'predictions.json'), JSON.stringify({ classes, rows }));
    };
    // Fold 1 as in classification.test.ts: sklearn gives accuracy 5/8, weighted P 19/40 R 5/8 F1 17/32,
    // macro P 19/45 R 5/9 F1 17/36, and warns that precision of bird (never predicted) is set to 0.
    write('a', [0, 0, 0, 1, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1, 0, 1]);
    // Fold 2 all right: every value 1.
    write('b', [0, 1, 2], [0, 1, 2]);
    // A train artifact with the train loop's history (the centroid fixture keeps none).
    mkdirSync(store.dir('train', 't'), { recursive: true });
    const history = [1, 2].map((epoch) => ({ epoch, learningRate: 0.01, trainLoss: 1 / epoch, trainAccuracy: 0.4 * epoch, frozen: false, seconds: 2 }));
    writeFileSync(path.join(store.dir('train', 't'), 'history.json'), JSON.stringify(history));
    const splitDir = path.join(root, 'split');
    mkdirSync(splitDir);
    const balance = (['train', 'val', 'test'] as const).map((part) => ({ fold: 1, part, class: 'cat', count: 1 }));
    writeFileSync(path.join(splitDir, 'split.json'), JSON.stringify({ folds: [], balance } satisfies SplitResult));
    const out = path.join(root, 'out');
    const warnings: string[] = [];
    const counts = await aggregate(
      {
        splitDir,
        cells: [
          { key: 't', stage: 'train', model: 'm', fold: 1 },
          { key: 'b', stage: 'predict', model: 'm', fold: 2 },
          { key: 'a', stage: 'predict', model: 'm', fold: 1 },
        ],
      },
      store,
      out,
      (message) => warnings.push(message),
    );
    assert.deepEqual(warnings, ['m fold 1: precision is ill-defined and set to 0 for class with no predicted samples: bird']);
    assert.deepEqual(counts, {
      folds: 1,
      variants: 0,
      backends: 0,
      training: 2,
      predictions: 11,
      scores: 0,
      summary: 0,
      'summary-by-fold': 0,
      'summary-over-folds': 0,
      'summary-by-class': 0,
      classification: 2,
      'classification-by-class': 6,
      'classification-summary': 1,
      confusion: 18,
      'confusion-total': 9,
    });
    const read = (name: string) => JSON.parse(readFileSync(path.join(out, `${name}.json`), 'utf8')) as Row[];
    assert.deepEqual(
      read('training'),
      history.map((h) => ({ model: 'm', fold: 1, ...h })),
    );
    assert.equal(readFileSync(path.join(out, 'training.csv'), 'utf8').split('\n')[0], 'model,fold,epoch,learningRate,trainLoss,trainAccuracy,frozen,seconds');

    const [first, second] = read('classification');
    assert.deepEqual([first.fold, second.fold], [1, 2], 'ordered by fold');
    const fold1 = { accuracy: 5 / 8, precision: 19 / 40, recall: 5 / 8, f1: 17 / 32, macroPrecision: 19 / 45, macroRecall: 5 / 9, macroF1: 17 / 36 };
    for (const measure of MEASURES) {
      close(first[measure], fold1[measure], `fold 1 ${measure}`);
      close(second[measure], 1, `fold 2 ${measure}`);
    }
    assert.deepEqual([first.n, second.n], [8, 3]);

    const bird = read('classification-by-class').find((r) => r.fold === 1 && r.class === 'bird')!;
    assert.deepEqual(bird, { model: 'm', fold: 1, class: 'bird', precision: 0, recall: 0, f1: 0, support: 2 });

    const [summary] = read('classification-summary');
    for (const [measure, value] of Object.entries({ accuracy: 5 / 8, precision: 19 / 40, recall: 5 / 8, f1: 17 / 32 })) {
      close(summary[measure], (value + 1) / 2, `mean ${measure}`);
      close(summary[`${measure}Sd`], (1 - value) / Math.SQRT2, `sd ${measure}`);
    }
    assert.equal(summary.folds, 2);

    // confusion_matrix of fold 1 [[2,1,0],[0,3,0],[1,1,0]] plus the identity of fold 2.
    const total = read('confusion-total');
    assert.deepEqual(
      classes.map((t) => classes.map((p) => total.find((r) => r.true === t && r.predicted === p)!.count)),
      [
        [3, 1, 0],
        [0, 4, 0],
        [1, 1, 1],
      ],
    );
    assert.equal(readFileSync(path.join(out, 'confusion-total.csv'), 'utf8').split('\n')[2], 'm,cat,dog,1');
  });
});
