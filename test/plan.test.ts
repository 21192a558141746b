import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cli, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

const range = (n: number, scale = 1) => `[${Array.from({ length: n }, (_, i) => (i + 1) * scale).join(', ')}]`;

/** The study's grid shape: 4 models × 5 folds × 12 explainer variants × 8 metric variants. */
const studyGrid = fixtureManifest({
  name: 'study-shape',
  k: 5,
  models: `  - { id: centroid, params: { rate: ${range(4, 0.2)} } }`,
  explainers: `  - { id: difference, params: { power: ${range(12)} } }`,
  metrics: `  - { id: mass, params: { threshold: ${range(8, 0.1)} } }`,
});

type PlanJson = { stages: { stage: string; total: number }[]; tasks: { key: string; stage: string; cell: Record<string, unknown>; inputs: string[] }[] };

describe('planner', () => {
  it('expands the study-sized grid into its stage table, without the data', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'study.yaml'), studyGrid);
    const result = cli(['plan', 'study.yaml', '--json'], dir);
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    const totals = Object.fromEntries(plan.stages.map((s) => [s.stage, s.total]));
    assert.deepEqual(totals, { index: 1, split: 1, train: 20, predict: 20, explain: 240, score: 1920, aggregate: 1, report: 1 });
    assert.equal(new Set(plan.tasks.map((t) => t.key)).size, plan.tasks.length, 'keys are unique');
  });

  it('gives the same keys for the same manifest and data, from any folder', () => {
    const keys = () => {
      const dir = tempDir();
      makePointsDataset(path.join(dir, 'data'));
      writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
      return (JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson).tasks.map((t) => t.key);
    };
    assert.deepEqual(keys(), keys());
  });

  it('keys the index on the data files’ contents', () => {
    const dir = tempDir();
    makePointsDataset(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
    const before = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    writeFileSync(path.join(dir, 'data', 'class0', 'item00.json'), '[9,9,9,9,9,9,9,9]');
    const after = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    const changed = after.tasks.filter((t, i) => t.key !== before.tasks[i].key);
    assert.equal(changed.length, after.tasks.length, 'every task depends on the index');
  });

  it('removes excluded cells and only those', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ extra: 'exclude:\n  - { explainer: "difference[power=2]", metric: zeroing }\n  - { fold: 3, explainer: "difference[power=1]" }\n' }));
    const plan = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    const scores = plan.tasks.filter((t) => t.stage === 'score').map((t) => t.cell);
    assert.equal(scores.length, 12 - 3 - 2);
    assert.ok(!scores.some((c) => c.explainer === 'difference[power=2]' && c.metric === 'zeroing'));
    assert.ok(!scores.some((c) => c.fold === 3 && c.explainer === 'difference[power=1]'));
    assert.equal(plan.tasks.filter((t) => t.stage === 'explain').length, 5);
  });
});
