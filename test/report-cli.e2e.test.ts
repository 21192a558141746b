/**
 * `salgrid results` and `salgrid report` on a fixture sweep, and what the
 * report stage writes: charts picked and ordered by report.charts, their
 * spec, SVG and PNG beside report.html, the verdict tables in results/.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { cli, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

function project(extra = ''): string {
  const dir = tempDir('salgrid-report-');
  makePointsDataset(path.join(dir, 'data'));
  writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ explainers: '  - difference', extra }));
  return dir;
}

describe('salgrid results and salgrid report', () => {
  let dir = '';
  before(() => {
    dir = project();
    const before = cli(['results', 'sweep.yaml'], dir);
    assert.equal(before.code, 1);
    assert.match(before.stderr, /no results for demo yet \(still to run: 1 index, 1 split, 3 train, 3 predict, 3 explain, 6 score, 1 aggregate tasks\); run `salgrid run sweep\.yaml` first/);
    const report = cli(['report', 'sweep.yaml'], dir);
    assert.equal(report.code, 1);
    assert.match(report.stderr, /the report needs results that are not computed yet/);
    const run = cli(['run', 'sweep.yaml'], dir);
    assert.equal(run.code, 0, run.stderr + run.stdout);
  });

  it('prints the summaries as Markdown by default, fractions of classification tables as percentages', () => {
    const result = cli(['results', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^## classification-summary\n\n\| model \| accuracy \|/);
    assert.match(result.stdout, /\n## decision\n/);
    assert.match(result.stdout, /\n## summary-over-folds\n\n\| model \| explainer \| metric \| measure \| mean \| sd \| folds \|\n\| --- \| --- \| --- \| --- \| ---: \| ---: \| ---: \|\n\| centroid \| difference \| mass \| above \|/);
    const accuracy = JSON.parse(readFileSync(path.join(dir, 'runs/demo/results/classification-summary.json'), 'utf8'))[0].accuracy as number;
    assert.ok(result.stdout.includes(`| centroid | ${(100 * accuracy).toFixed(1)}% |`));
  });

  it('prints named tables as CSV (the files’ contents) and JSON (the values as computed)', () => {
    const csv = cli(['results', 'sweep.yaml', 'classification', '--format', 'csv'], dir);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout, readFileSync(path.join(dir, 'runs/demo/results/classification.csv'), 'utf8').trimEnd() + '\n');
    const json = cli(['results', 'sweep.yaml', 'summary', 'decision', '--format', 'json'], dir);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown[]>;
    assert.deepEqual(Object.keys(parsed), ['summary', 'decision']);
    assert.deepEqual(parsed.summary, JSON.parse(readFileSync(path.join(dir, 'runs/demo/results/summary.json'), 'utf8')));
    const two = cli(['results', 'sweep.yaml', 'folds', 'variants', '--format', 'csv'], dir);
    assert.match(two.stdout, /^# folds\nfold,class,train,val,test\n[\s\S]*\n\n# variants\nkind,label,id,params\n/);
  });

  it('lists its tables, and names the known ones when asked for an unknown table or format', () => {
    const list = cli(['results', 'sweep.yaml', '--list', '--format', 'csv'], dir);
    assert.match(list.stdout, /^table,rows\n/);
    for (const table of ['summary-over-folds', 'summary-by-class', 'predictions', 'training', 'variants', 'decision', 'decision-by-explainer']) assert.match(list.stdout, new RegExp(`\\n${table},\\d+\\n`));
    const unknown = cli(['results', 'sweep.yaml', 'sumary'], dir);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /demo has no table "sumary"; it has .*summary,/);
    const format = cli(['results', 'sweep.yaml', '--format', 'xlsx'], dir);
    assert.equal(format.code, 1);
    assert.match(format.stderr, /--format takes md, csv, json; got "xlsx"/);
  });

  it('salgrid run left the report with its charts beside it and the verdicts in results/', () => {
    const sweep = path.join(dir, 'runs/demo');
    assert.deepEqual(readdirSync(path.join(sweep, 'charts')).sort(), ['confusion-matrices.png', 'confusion-matrices.svg', 'confusion-matrices.vg.json', 'confusion-matrices.vl.json']);
    assert.equal(readFileSync(path.join(sweep, 'charts/confusion-matrices.png')).subarray(1, 4).toString(), 'PNG');
    assert.match(readFileSync(path.join(sweep, 'charts/confusion-matrices.svg'), 'utf8'), /^<svg /);
    const spec = JSON.parse(readFileSync(path.join(sweep, 'charts/confusion-matrices.vl.json'), 'utf8')) as { $schema: string };
    assert.match(spec.$schema, /vega-lite\/v6/);
    for (const table of ['decision', 'decision-by-explainer']) assert.ok(existsSync(path.join(sweep, `results/${table}.csv`)), table);
    const html = readFileSync(path.join(sweep, 'report.html'), 'utf8');
    for (const section of ['verdicts', 'charts', 'tables', 'gallery']) assert.ok(html.includes(`<section id="${section}">`), section);
    // Offline: the libraries inlined, nothing fetched from elsewhere.
    for (const library of ['vega', 'vega-lite', 'vega-embed']) assert.match(html, new RegExp(`<script data-library="${library}@\\d+\\.\\d+\\.\\d+">`));
    // (The libraries' code holds URLs it never fetches here; the browser test refuses every request that is not a file.)
    const markup = html.replace(/(<script[^>]*>)[\s\S]*?<\/script>/g, '$1</script>');
    const outside = /<script[^>]+src=|<link[^>]+href=|<img[^>]+src="(?!data:|gallery\/)/.exec(markup);
    assert.ok(outside === null, `the page loads something from outside: ${outside?.[0]}`);
    assert.match(html, /<p class="empty">No gallery: /);
  });

  it('salgrid report: nothing to do when the report is current; --force rebuilds it from the cached results only', () => {
    const current = cli(['report', 'sweep.yaml'], dir);
    assert.equal(current.code, 0, current.stderr);
    assert.match(current.stdout, /report is current: nothing to rebuild/);
    const page = path.join(dir, 'runs/demo/report.html');
    const before = statSync(page).mtimeMs;
    const forced = cli(['report', 'sweep.yaml', '--force'], dir);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /report built in [\d.]+ s\.\nreport: {2}.*report\.html/);
    assert.ok(statSync(page).mtimeMs >= before);
    const events = readFileSync(path.join(dir, 'runs/demo/events.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; stage?: string });
    // Only the report ran again.
    const lastSweep = events.map((e) => e.type).lastIndexOf('sweep-end');
    assert.deepEqual([...new Set(events.slice(lastSweep + 1).filter((e) => e.type === 'start').map((e) => e.stage))], ['report']);
    const rerun = cli(['run', 'sweep.yaml'], dir);
    assert.match(rerun.stdout, /nothing to do/);
  });
});

describe('report.charts', () => {
  it('picks and orders the charts; an unknown chart is a manifest error naming the line', () => {
    const dir = project('report: { charts: [confusion-matrices, localisation-by-method], gallery: 0 }\n');
    const run = cli(['run', 'sweep.yaml'], dir);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const html = readFileSync(path.join(dir, 'runs/demo/report.html'), 'utf8');
    // localisation-by-method has no Hit Rate to draw here: left out, not drawn empty.
    assert.deepEqual([...html.matchAll(/<figure class="chart" id="figure-([a-z-]+)">/g)].map((m) => m[1]), ['confusion-matrices']);
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ explainers: '  - difference', extra: 'report: { charts: [confusion-matrix] }\n' }));
    const bad = cli(['validate', 'sweep.yaml'], dir);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /sweep\.yaml:\d+:\d+.*unknown chart "confusion-matrix"; did you mean "confusion-matrices"\?/);
  });
});
