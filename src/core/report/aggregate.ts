import path from 'node:path';
import * as aq from 'arquero';
import type { ScoreRow, ScoreValue } from '../plugins/types.ts';
import type { Stage } from '../plan/stages.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import type { Store } from '../store/store.ts';
import { ARTIFACT_FILES, readJson, type PredictionsFile } from '../stages/artifacts.ts';
import type { SplitResult } from '../stages/split.ts';

export interface AggregateCell {
  key: string;
  stage: Stage;
  model?: string;
  fold?: number;
  explainer?: string;
  metric?: string;
}

export interface AggregateParams {
  cells: AggregateCell[];
  /** The split artifact, whose class balance per fold becomes a table. */
  splitDir: string;
}

type Row = Record<string, ScoreValue>;

/** The result tables a sweep produces, by file stem. */
export const RESULT_TABLES = ['folds', 'scores', 'summary', 'summary-by-fold', 'classification', 'classification-summary'] as const;

/**
 * Gathers every score row and prediction of the sweep into tables: the
 * long table of per-image values, means ± sd per model × explainer × metric
 * measure (over images, and over fold means), and accuracy per model and fold.
 */
export async function aggregate(params: AggregateParams, store: Store, out: string): Promise<Record<string, number>> {
  const scores: Row[] = [];
  const predictions: Row[] = [];
  for (const cell of params.cells) {
    if (cell.stage === 'predict') {
      const file = readJson<PredictionsFile>(path.join(store.dir('predict', cell.key), ARTIFACT_FILES.predictions));
      for (const row of file.rows) predictions.push({ model: cell.model!, fold: cell.fold!, id: row.id, correct: row.label === row.predicted ? 1 : 0 });
    } else {
      const rows = readJson<ScoreRow[]>(path.join(store.dir('score', cell.key), ARTIFACT_FILES.rows));
      for (const row of rows) {
        for (const [measure, value] of Object.entries(row)) {
          if (measure === 'id' || (typeof value !== 'number' && value !== null && typeof value !== 'boolean')) continue;
          scores.push({ model: cell.model!, fold: cell.fold!, explainer: cell.explainer!, metric: cell.metric!, measure, id: row.id, value: typeof value === 'boolean' ? Number(value) : value });
        }
      }
    }
  }
  const split = readJson<SplitResult>(path.join(params.splitDir, ARTIFACT_FILES.split));
  const tables: Record<string, Row[]> = { folds: [], scores: [], summary: [], 'summary-by-fold': [], classification: [], 'classification-summary': [] };
  tables.folds = rows(aq.from(split.balance).groupby('fold', 'class').pivot('part', 'count').select('fold', 'class', 'train', 'val', 'test').orderby('fold', 'class'));
  const stats = { mean: aq.op.mean('value'), sd: aq.op.stdev('value'), n: aq.op.valid('value') };
  const scoreKeys = ['model', 'explainer', 'metric', 'measure'];
  if (scores.length > 0) {
    const table = aq.from(scores).orderby(...scoreKeys, 'fold', 'id');
    tables.scores = rows(table);
    tables.summary = rows(table.groupby(...scoreKeys).rollup(stats).orderby(...scoreKeys));
    const byFold = table.groupby(...scoreKeys, 'fold').rollup(stats).orderby(...scoreKeys, 'fold');
    tables['summary-by-fold'] = rows(byFold);
  }
  if (predictions.length > 0) {
    const byFold = aq
      .from(predictions)
      .groupby('model', 'fold')
      .rollup({ accuracy: aq.op.mean('correct'), n: aq.op.count() })
      .orderby('model', 'fold');
    tables.classification = rows(byFold);
    tables['classification-summary'] = rows(
      byFold.groupby('model').rollup({ accuracy: aq.op.mean('accuracy'), sd: aq.op.stdev('accuracy'), folds: aq.op.count() }).orderby('model'),
    );
  }
  const counts: Record<string, number> = {};
  for (const name of RESULT_TABLES) {
    const table = tables[name];
    counts[name] = table.length;
    await writeFileAtomic(path.join(out, `${name}.json`), `${JSON.stringify(table)}\n`);
    await writeFileAtomic(path.join(out, `${name}.csv`), table.length > 0 ? aq.toCSV(aq.from(table)) : '');
  }
  return counts;
}

/** Table rows with missing values as null, so JSON keeps every column. */
function rows(table: aq.ColumnTable): Row[] {
  return table.objects().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? null : (v as ScoreValue)])));
}
