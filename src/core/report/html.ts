import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ScoreValue } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';

type Row = Record<string, ScoreValue>;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function formatCell(value: ScoreValue): string {
  if (value === null) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4);
  return escapeHtml(String(value));
}

function htmlTable(rows: Row[]): string {
  if (rows.length === 0) return '<p class="empty">No rows.</p>';
  const columns = Object.keys(rows[0]);
  const head = columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows.map((row) => `<tr>${columns.map((c) => `<td>${formatCell(row[c] ?? null)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** A self-contained HTML page of the sweep's result tables. */
export async function writeReport(params: { name: string }, aggregateDir: string, out: string): Promise<void> {
  const read = (name: string) => JSON.parse(readFileSync(path.join(aggregateDir, `${name}.json`), 'utf8')) as Row[];
  const sections = [
    ['Images per class in each fold', read('folds')],
    ['Classification (mean over folds)', read('classification-summary')],
    ['Classification per fold', read('classification')],
    ['Saliency measures (mean over images)', read('summary')],
  ] as const;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>salgrid · ${escapeHtml(params.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.empty{color:#777}</style>
</head><body>
<h1>salgrid report: ${escapeHtml(params.name)}</h1>
${sections.map(([title, rows]) => `<h2>${escapeHtml(title)}</h2>\n${htmlTable(rows)}`).join('\n')}
</body></html>
`;
  await writeFileAtomic(path.join(out, 'report.html'), html);
}
