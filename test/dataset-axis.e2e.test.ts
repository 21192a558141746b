/**
 * A sweep over two dataset variants through the real CLI, on the points
 * fixture (two data folders, one grid axis): plan, run, resume, results and
 * report all name the variant; the tables and the verdicts come per variant.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { ROOT, cli, fixtureManifest, makePointsDataset, ok, tempDir } from './helpers.ts';

const manifest = fixtureManifest({ metrics: '  - mass', extra: 'exclude:\n  - { dataset: noisy, explainer: "difference[power=2]" }\n' }).replace(
  'params: { dir: data }',
  'params: { dir: [data, noisy] }\n  names: [clean, noisy]',
);

describe('dataset variants end to end', () => {
  const dir = tempDir();
  const results = (name: string) => JSON.parse(readFileSync(path.join(dir, 'runs/demo/results', `${name}.json`), 'utf8')) as Record<string, unknown>[];

  before(() => {
    makePointsDataset(path.join(dir, 'data'));
    makePointsDataset(path.join(dir, 'noisy'), { seed: 3 });
    writeFileSync(path.join(dir, 'sweep.yaml'), manifest);
  });

  it('salgrid plan counts the tasks of each variant', () => {
    const plan = ok(cli(['plan', 'sweep.yaml'], dir)).stdout;
    assert.match(plan, /^sweep demo: 2 dataset variants \(clean, noisy\), 36 tasks, 0 cached, 36 to run$/m);
    assert.match(plan, /^stage +total +cached +to run +clean +noisy$/m);
    assert.match(plan, /^explain +9 +0 +9 +6 +3$/m);
  });

  it('runs every variant, and a second run does no work', () => {
    const first = ok(cli(['run', 'sweep.yaml'], dir));
    assert.match(first.stdout, /finished in .*: 36 run, 0 cached, 0 failed, 0 skipped/);
    assert.match(ok(cli(['run', 'sweep.yaml'], dir)).stdout, /nothing to do: all 36 tasks are cached/);
  });

  it('tables lead with the dataset variant; classification per variant × model', () => {
    const summary = results('classification-summary');
    assert.deepEqual(
      summary.map((r) => [r.dataset, r.model, r.folds]),
      [
        ['clean', 'centroid', 3],
        ['noisy', 'centroid', 3],
      ],
    );
    const scores = results('summary-over-folds');
    assert.deepEqual(Object.keys(scores[0]).slice(0, 3), ['dataset', 'model', 'explainer']);
    assert.deepEqual([...new Set(scores.filter((r) => r.dataset === 'noisy').map((r) => r.explainer))], ['difference[power=1]'], 'the excluded cell is left out');
    assert.deepEqual(
      results('variants').filter((r) => r.kind === 'dataset').map((r) => [r.label, r.params]),
      [
        ['clean', '{"dir":"data"}'],
        ['noisy', '{"dir":"noisy"}'],
      ],
    );
  });

  it('salgrid results and the report give one verdict per variant × model', () => {
    const csv = ok(cli(['results', 'sweep.yaml', 'decision', '--format', 'csv'], dir)).stdout.trim().split('\n');
    assert.equal(csv.length, 3);
    assert.match(csv[0], /^dataset,model,verdict,/);
    assert.match(csv[1], /^clean,centroid,/);
    assert.match(csv[2], /^noisy,centroid,/);
    const html = readFileSync(path.join(dir, 'runs/demo/report.html'), 'utf8');
    assert.deepEqual(
      [...html.matchAll(/<article class="verdict[^"]*" data-model="([^"]+)" data-dataset="([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`),
      ['centroid clean', 'centroid noisy'],
    );
    assert.match(html, /<h3>centroid · noisy: /);
    assert.match(html, /2 dataset variant\(s\) × 1 model\(s\)/);
  });
});

describe('experiments/shortcut.yaml', () => {
  it('plans the quickstart’s small CNN on a clean and a shortcut variant of the phantoms', () => {
    const plan = JSON.parse(ok(cli(['plan', path.join(ROOT, 'experiments/shortcut.yaml'), '--json'], tempDir())).stdout) as {
      tasks: { stage: string; cell: { dataset?: string }; params: { params?: { shortcut?: { probability: number; classes: string[] } } } }[];
    };
    const indexes = plan.tasks.filter((t) => t.stage === 'index');
    assert.deepEqual(
      indexes.map((t) => [t.cell.dataset, { probability: t.params.params?.shortcut?.probability, classes: t.params.params?.shortcut?.classes }]),
      [
        ['clean', { probability: 0, classes: [] }],
        ['shortcut', { probability: 1, classes: ['ST'] }],
      ],
    );
    for (const dataset of ['clean', 'shortcut']) assert.equal(plan.tasks.filter((t) => t.stage === 'train' && t.cell.dataset === dataset).length, 3, dataset);
  });
});
