import path from 'node:path';
import * as aq from 'arquero';
import type { ScoreRow, ScoreValue } from '../plugins/types.ts';
import type { Stage } from '../plan/stages.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import type { Store } from '../store/store.ts';
import { existsSync } from 'node:fs';
import { ARTIFACT_FILES, readJson, type PredictionsFile } from '../stages/artifacts.ts';
import type { SplitResult } from '../stages/split.ts';
import { backendRows } from './backends.ts';
import { classificationMetrics, zeroDivisionWarnings } from './classification.ts';

export interface AggregateCell {
  key: string;
  stage: Stage;
  /** The dataset variant, when the sweep has several: every table gets a leading `dataset` column. */
  dataset?: string;
  model?: string;
  fold?: number;
  explainer?: string;
  metric?: string;
}

/** One variant of the grid: what a label in the tables stands for. */
export interface VariantRow {
  kind: 'dataset' | 'architecture' | 'explainer' | 'metric';
  label: string;
  id: string;
  params: Record<string, unknown>;
}

export interface AggregateParams {
  /** Train cells (their history), predict cells (predictions) and score cells (rows). */
  cells: AggregateCell[];
  /** The split artifact, whose class balance per fold becomes a table. */
  splitDir?: string;
  /** With several dataset variants: each one's split artifact instead. */
  splits?: { dataset: string; dir: string }[];
  /** The manifest's models, explainers and metrics, so charts can find a metric by plugin id and params. */
  variants?: VariantRow[];
}

/** File a train artifact keeps its per-epoch history in (written by the architecture's train loop), when it keeps one. */
export const TRAINING_HISTORY = 'history.json';

type Row = Record<string, ScoreValue>;

/**
 * The result tables a sweep produces, by file stem:
 * - `folds`: fold × class × images in train, val, test;
 * - `variants`: kind (architecture, explainer, metric) × label → plugin id
 *   and params (JSON): what each label in the other tables stands for;
 * - `backends`: stage × backend (name, engine, device, onnx threads) → tasks:
 *   what ran the tensor tasks behind these tables, from their meta.json;
 * - `training`: model × fold × epoch → the train loop's history (learningRate,
 *   trainLoss, trainAccuracy, valLoss, valAccuracy…), for architectures that keep one;
 * - `predictions`: model × fold × image → true and predicted class, confidence
 *   (the predicted class's probability);
 * - `scores`: model × explainer × metric × measure × fold × image → value;
 * - `summary`, `summary-by-fold`: mean, sd, n of the values per model ×
 *   explainer × metric × measure (and fold);
 * - `summary-over-folds`: the same keys → mean and sd of the fold means, and
 *   the number of folds with a mean (folds);
 * - `summary-by-class`: the same keys × true class → mean, sd, n over the
 *   images of that class, all folds together;
 * - `classification`: model × fold → accuracy, precision, recall, f1 (averages
 *   weighted by support), macroPrecision, macroRecall, macroF1, n;
 * - `classification-by-class`: model × fold × class → precision, recall, f1, support;
 * - `classification-summary`: model → mean and sd over folds of accuracy,
 *   precision, recall, f1 (accuracy, accuracySd, …, f1Sd), folds;
 * - `confusion`: model × fold × true class × predicted class → count, every pair;
 * - `confusion-total`: model × true × predicted → count summed over folds.
 * Classification values are fractions 0…1, as scikit-learn defines them
 * (see classification.ts); classes are named, in the dataset's class order.
 * With several dataset variants every table but `variants` and `backends` starts with a
 * `dataset` column and its groups are per dataset variant as well.
 */
export const RESULT_TABLES = [
  'folds',
  'variants',
  'backends',
  'training',
  'predictions',
  'scores',
  'summary',
  'summary-by-fold',
  'summary-over-folds',
  'summary-by-class',
  'classification',
  'classification-by-class',
  'classification-summary',
  'confusion',
  'confusion-total',
] as const;

/**
 * Gathers every score row and prediction of the sweep into tables (see
 * RESULT_TABLES), writes each as CSV and JSON to `out` and returns their row
 * counts. `warn` gets scikit-learn's zero-division warnings (a class never
 * predicted, or absent from a fold's test set).
 */
export async function aggregate(params: AggregateParams, store: Store, out: string, warn: (message: string) => void = () => {}): Promise<Record<string, number>> {
  const scores: Row[] = [];
  const predictions: Predictions[] = [];
  const training: Row[] = [];
  for (const cell of params.cells) {
    if (cell.stage === 'train') {
      training.push(...trainingRows(datasetColumn(cell), cell.model!, cell.fold!, path.join(store.dir('train', cell.key), TRAINING_HISTORY)));
    } else if (cell.stage === 'predict') {
      predictions.push({ ...datasetColumn(cell), model: cell.model!, fold: cell.fold!, file: readJson<PredictionsFile>(path.join(store.dir('predict', cell.key), ARTIFACT_FILES.predictions)) });
    } else {
      const rows = readJson<ScoreRow[]>(path.join(store.dir('score', cell.key), ARTIFACT_FILES.rows));
      for (const row of rows) {
        for (const [measure, value] of Object.entries(row)) {
          if (measure === 'id' || (typeof value !== 'number' && value !== null && typeof value !== 'boolean')) continue;
          scores.push({ ...datasetColumn(cell), model: cell.model!, fold: cell.fold!, explainer: cell.explainer!, metric: cell.metric!, measure, id: row.id, value: typeof value === 'boolean' ? Number(value) : value });
        }
      }
    }
  }
  const datasetKeys = params.splits ? ['dataset'] : [];
  const splits = params.splits ?? [{ dataset: undefined, dir: params.splitDir! }];
  const balance = splits.flatMap(({ dataset, dir }) => readJson<SplitResult>(path.join(dir, ARTIFACT_FILES.split)).balance.map((row) => ({ ...datasetColumn({ dataset }), ...row })));
  const tables = Object.fromEntries(RESULT_TABLES.map((name) => [name, [] as Row[]])) as Record<(typeof RESULT_TABLES)[number], Row[]>;
  const foldKeys = [...datasetKeys, 'fold', 'class'];
  tables.folds = rows(aq.from(balance).groupby(...foldKeys).pivot('part', 'count').select(...foldKeys, 'train', 'val', 'test').orderby(...foldKeys));
  tables.variants = (params.variants ?? []).map((v) => ({ kind: v.kind, label: v.label, id: v.id, params: JSON.stringify(v.params) }));
  tables.backends = backendRows(params.cells, store);
  tables.training = uniformRows(training);
  tables.predictions = predictionRows(predictions);
  const stats = { mean: aq.op.mean('value'), sd: aq.op.stdev('value'), n: aq.op.valid('value') };
  const scoreKeys = [...datasetKeys, 'model', 'explainer', 'metric', 'measure'];
  if (scores.length > 0) {
    const table = aq.from(scores).orderby(...scoreKeys, 'fold', 'id');
    tables.scores = rows(table);
    tables.summary = rows(table.groupby(...scoreKeys).rollup(stats).orderby(...scoreKeys));
    const byFold = table.groupby(...scoreKeys, 'fold').rollup(stats).orderby(...scoreKeys, 'fold');
    tables['summary-by-fold'] = rows(byFold);
    tables['summary-over-folds'] = rows(
      byFold
        .groupby(...scoreKeys)
        .rollup({ mean: aq.op.mean('mean'), sd: aq.op.stdev('mean'), folds: aq.op.valid('mean') })
        .orderby(...scoreKeys),
    );
    if (tables.predictions.length > 0) {
      const imageKeys = [...datasetKeys, 'model', 'fold', 'id'];
      const classes = aq.from(tables.predictions).select(...imageKeys, 'true').rename({ true: 'class' });
      const classOrder = new Map(predictions[0]?.file.classes.map((name, i) => [name, i]));
      const byClass = rows(table.join_left(classes, [imageKeys, imageKeys]).groupby(...scoreKeys, 'class').rollup(stats));
      tables['summary-by-class'] = byClass.sort((a, b) => compareKeys(a, b, scoreKeys) || (classOrder.get(String(a.class)) ?? Infinity) - (classOrder.get(String(b.class)) ?? Infinity));
    }
  }
  Object.assign(tables, classificationTables(predictions, datasetKeys, warn));
  const counts: Record<string, number> = {};
  for (const name of RESULT_TABLES) {
    const table = tables[name];
    counts[name] = table.length;
    await writeFileAtomic(path.join(out, `${name}.json`), `${JSON.stringify(table)}\n`);
    await writeFileAtomic(path.join(out, `${name}.csv`), table.length > 0 ? aq.toCSV(aq.from(table)) : '');
  }
  return counts;
}

/** The predictions of one model × fold (of one dataset variant, when there are several). */
interface Predictions {
  dataset?: string;
  model: string;
  fold: number;
  file: PredictionsFile;
}

/** A train artifact's history as rows (none when the architecture keeps no history.json). */
function trainingRows(on: Row, model: string, fold: number, file: string): Row[] {
  if (!existsSync(file)) return [];
  const history = readJson<unknown>(file);
  if (!Array.isArray(history)) throw new Error(`${file} holds no list of epochs`);
  return history.map((record: Record<string, unknown>) => {
    const row: Row = { ...on, model, fold };
    for (const [key, value] of Object.entries(record)) if (value === null || ['number', 'string', 'boolean'].includes(typeof value)) row[key] = value as ScoreValue;
    return row;
  });
}

/** Rows with the union of their columns (missing ones null), in first-seen column order. */
function uniformRows(list: Row[]): Row[] {
  const columns = [...new Set(list.flatMap((row) => Object.keys(row)))];
  return list.map((row) => Object.fromEntries(columns.map((c) => [c, row[c] ?? null])));
}

/** Dataset variant, then model, then fold. */
function byModelAndFold(a: Predictions, b: Predictions): number {
  const [x, y] = [a.dataset ?? '', b.dataset ?? ''];
  if (x !== y) return x < y ? -1 : 1;
  return a.model < b.model ? -1 : a.model > b.model ? 1 : a.fold - b.fold;
}

/** The leading `dataset` column, only where the sweep has several dataset variants. */
const datasetColumn = (p: { dataset?: string }): Row => (p.dataset === undefined ? {} : { dataset: p.dataset });

/** One row per model × fold × test image: true and predicted class, and the predicted class's probability. */
function predictionRows(predictions: Predictions[]): Row[] {
  const sorted = [...predictions].sort(byModelAndFold);
  return sorted.flatMap(({ dataset, model, fold, file }) =>
    file.rows.map((r) => ({ ...datasetColumn({ dataset }), model, fold, id: r.id, true: file.classes[r.label], predicted: file.classes[r.predicted], confidence: r.probabilities[r.predicted] ?? null })),
  );
}

function compareKeys(a: Row, b: Row, keys: string[]): number {
  for (const key of keys) {
    const [x, y] = [String(a[key]), String(b[key])];
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** The classification tables of RESULT_TABLES from the predictions of each model × fold (× dataset variant: `datasetKeys`). */
function classificationTables(predictions: Predictions[], datasetKeys: string[], warn: (message: string) => void) {
  const tables = { classification: [] as Row[], 'classification-by-class': [] as Row[], 'classification-summary': [] as Row[], confusion: [] as Row[], 'confusion-total': [] as Row[] };
  if (predictions.length === 0) return tables;
  const sorted = [...predictions].sort(byModelAndFold);
  const totals = new Map<string, { on: Row; model: string; classes: string[]; confusion: number[][] }>();
  for (const { dataset, model, fold, file } of sorted) {
    const on = datasetColumn({ dataset });
    const subject = dataset === undefined ? model : `${model} · ${dataset}`;
    const metrics = classificationMetrics(file.rows, file.classes);
    for (const message of zeroDivisionWarnings(metrics)) warn(`${subject} fold ${fold}: ${message}`);
    const { weighted, macro } = metrics;
    tables.classification.push({
      ...on,
      model,
      fold,
      accuracy: metrics.accuracy,
      precision: weighted.precision,
      recall: weighted.recall,
      f1: weighted.f1,
      macroPrecision: macro.precision,
      macroRecall: macro.recall,
      macroF1: macro.f1,
      n: metrics.n,
    });
    for (const s of metrics.perClass) tables['classification-by-class'].push({ ...on, model, fold, class: s.class, precision: s.precision, recall: s.recall, f1: s.f1, support: s.support });
    const total = totals.get(subject) ?? { on, model, classes: file.classes, confusion: file.classes.map(() => new Array<number>(file.classes.length).fill(0)) };
    if (total.classes.join('\0') !== file.classes.join('\0')) throw new Error(`predictions of ${subject} fold ${fold} name classes [${file.classes.join(', ')}], other folds [${total.classes.join(', ')}]`);
    totals.set(subject, total);
    metrics.confusion.forEach((counts, t) =>
      counts.forEach((count, p) => {
        tables.confusion.push({ ...on, model, fold, true: file.classes[t], predicted: file.classes[p], count });
        total.confusion[t][p] += count;
      }),
    );
  }
  for (const { on, model, classes, confusion } of totals.values()) {
    confusion.forEach((counts, t) => counts.forEach((count, p) => tables['confusion-total'].push({ ...on, model, true: classes[t], predicted: classes[p], count })));
  }
  const measures = ['accuracy', 'precision', 'recall', 'f1'] as const;
  const summary = Object.fromEntries(measures.flatMap((m) => [[m, aq.op.mean(m)], [`${m}Sd`, aq.op.stdev(m)]]));
  const modelKeys = [...datasetKeys, 'model'];
  tables['classification-summary'] = rows(aq.from(tables.classification).groupby(...modelKeys).rollup({ ...summary, folds: aq.op.count() }).orderby(...modelKeys));
  tables.classification = rows(aq.from(tables.classification));
  return tables;
}

/** Table rows with missing values as null, so JSON keeps every column. */
function rows(table: aq.ColumnTable): Row[] {
  return table.objects().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? null : (v as ScoreValue)])));
}
