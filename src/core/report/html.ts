import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ScoreValue } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';

type Row = Record<string, ScoreValue>;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function formatCell(value: ScoreValue, percent = false): string {
  if (value === null) return '—';
  if (typeof value === 'number' && percent) return `${(100 * value).toFixed(1)}%`;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4);
  return escapeHtml(String(value));
}

/** Columns of the classification tables that hold fractions 0…1, shown as percentages. */
const PERCENT_COLUMNS = new Set(['accuracy', 'precision', 'recall', 'f1', 'macroPrecision', 'macroRecall', 'macroF1'].flatMap((c) => [c, `${c}Sd`]));

function htmlTable(rows: Row[], percent: ReadonlySet<string> = new Set()): string {
  if (rows.length === 0) return '<p class="empty">No rows.</p>';
  const columns = Object.keys(rows[0]);
  const head = columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows.map((row) => `<tr>${columns.map((c) => `<td>${formatCell(row[c] ?? null, percent.has(c))}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** The long confusion table (model, true, predicted, count) as one row per model × true class, a column per predicted class. */
function confusionMatrix(long: Row[]): Row[] {
  const corner = 'true \\ predicted';
  const wide = new Map<string, Row>();
  for (const { model, true: actual, predicted, count } of long) {
    if (predicted === 'model' || predicted === corner) return long;
    const key = JSON.stringify([model, actual]);
    if (!wide.has(key)) wide.set(key, { model, [corner]: actual });
    wide.get(key)![String(predicted)] = count;
  }
  return [...wide.values()];
}

/** A self-contained HTML page of the sweep's result tables. */
export async function writeReport(params: { name: string }, aggregateDir: string, out: string): Promise<void> {
  const read = (name: string) => JSON.parse(readFileSync(path.join(aggregateDir, `${name}.json`), 'utf8')) as Row[];
  const sections: [title: string, rows: Row[], percent?: ReadonlySet<string>][] = [
    ['Images per class in each fold', read('folds')],
    ['Classification (mean ± sd over folds; precision, recall, F1 weighted by support)', read('classification-summary'), PERCENT_COLUMNS],
    ['Classification per fold', read('classification'), PERCENT_COLUMNS],
    ['Classification per class and fold', read('classification-by-class'), PERCENT_COLUMNS],
    ['Confusion matrix (summed over folds)', confusionMatrix(read('confusion-total'))],
    ['Saliency measures (mean over images)', read('summary')],
  ];
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>salgrid · ${escapeHtml(params.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.empty{color:#777}</style>
</head><body>
<h1>salgrid report: ${escapeHtml(params.name)}</h1>
${sections.map(([title, rows, percent]) => `<h2>${escapeHtml(title)}</h2>\n${htmlTable(rows, percent)}`).join('\n')}
</body></html>
`;
  await writeFileAtomic(path.join(out, 'report.html'), html);
}
