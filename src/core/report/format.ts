/** How result values read in the report and in `salgrid results --format md`. */
import type { ResultRow, ScoreValue } from '../plugins/types.ts';

/** Columns of the classification tables that hold fractions 0…1, shown as percentages. */
export const PERCENT_COLUMNS: ReadonlySet<string> = new Set(['accuracy', 'precision', 'recall', 'f1', 'macroPrecision', 'macroRecall', 'macroF1'].flatMap((c) => [c, `${c}Sd`]));

/** The tables whose fraction columns (PERCENT_COLUMNS) are shown as percentages. */
export const PERCENT_TABLES: ReadonlySet<string> = new Set(['classification', 'classification-by-class', 'classification-summary', 'decision']);

/** A value as text: null as —, fractions as percentages where asked, other numbers with 4 decimals. */
export function formatValue(value: ScoreValue | undefined, percent = false): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number' && percent) return `${(100 * value).toFixed(1)}%`;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4);
  return String(value);
}

/** The long confusion table (model, true, predicted, count) as one row per model × true class, a column per predicted class. */
export function confusionMatrix(long: ResultRow[]): ResultRow[] {
  const corner = 'true \\ predicted';
  const wide = new Map<string, ResultRow>();
  for (const { model, true: actual, predicted, count } of long) {
    if (predicted === 'model' || predicted === corner) return long;
    const key = JSON.stringify([model, actual]);
    if (!wide.has(key)) wide.set(key, { model, [corner]: actual });
    wide.get(key)![String(predicted)] = count;
  }
  return [...wide.values()];
}

/** Column names of a table: the union over its rows, in first-seen order. */
export function columnsOf(rows: ResultRow[]): string[] {
  const columns = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) columns.add(key);
  return [...columns];
}

/** A GitHub-flavoured Markdown table; numbers right-aligned. */
export function markdownTable(rows: ResultRow[], percent: ReadonlySet<string> = new Set()): string {
  if (rows.length === 0) return '_no rows_';
  const columns = columnsOf(rows);
  const escape = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const numeric = columns.map((c) => rows.every((r) => r[c] === null || r[c] === undefined || typeof r[c] === 'number'));
  const head = `| ${columns.map(escape).join(' | ')} |`;
  const rule = `|${numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`;
  const body = rows.map((row) => `| ${columns.map((c) => escape(formatValue(row[c], percent.has(c)))).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}
