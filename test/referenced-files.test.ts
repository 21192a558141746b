/**
 * Every file a task's result depends on is in its cache key, by content:
 * a pretrained tfjs model's model.json and every weights file it lists
 * (train), the files explainer and metric params name — a baseline image —
 * (explain, score). Changing one file's bytes re-keys exactly the tasks that
 * read it and their dependants; a missing one is one clear error; `plan
 * --why` names the file.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { FIXTURE_PLUGINS, ROOT, cli, fixtureManifest, makePointsDataset, mistake, ok, tempDir } from './helpers.ts';

interface PlanTask {
  key: string;
  stage: string;
  label: string;
  cell: { model?: string; explainer?: string; metric?: string };
  params: { explainer?: unknown };
  inputs: string[];
  files?: [string, string][];
  cached: boolean;
  why?: string;
}
interface PlanJson {
  missingData: string | null;
  tasks: PlanTask[];
}

const plan = (dir: string, ...flags: string[]) => JSON.parse(ok(cli(['plan', 'sweep.yaml', '--json', ...flags], dir)).stdout) as PlanJson;

/** The keys of `roots` and of every task that reads them, directly or not. */
function withDependants(tasks: PlanTask[], roots: PlanTask[]): Set<string> {
  const keys = new Set(roots.map((t) => t.key));
  for (let grew = true; grew; ) {
    grew = false;
    for (const task of tasks) {
      if (!keys.has(task.key) && task.inputs.some((k) => keys.has(k))) {
        keys.add(task.key);
        grew = true;
      }
    }
  }
  return keys;
}

/** Tasks of `before` whose key differs in `after` (same manifest, so same task order), as keys of `before`. */
function changed(before: PlanJson, after: PlanJson): Set<string> {
  assert.equal(after.tasks.length, before.tasks.length);
  return new Set(before.tasks.filter((t, i) => t.key !== after.tasks[i].key).map((t) => t.key));
}

function sweep(options: { training?: string; explainers: string; metrics?: string }): string {
  return [
    'name: files',
    'dataset: { source: synthetic-hfus, params: { perClass: 4, size: 32, seed: 1 }, imageSize: [32, 32] }',
    'folds: { k: 2, seed: 1 }',
    `training: ${options.training ?? '{ epochs: 1 }'}`,
    'models:',
    '  - small-cnn',
    'explainers:',
    options.explainers,
    'metrics:',
    options.metrics ?? '  - pointing-game\n  - deletion',
    '',
  ].join('\n');
}

const SHARDS = ['group1-shard1of3.bin', 'group1-shard2of3.bin', 'group1-shard3of3.bin'];

describe('referenced files key their tasks by content', () => {
  it('a pretrained tfjs model keys train by model.json and every shard it lists', () => {
    const dir = tempDir('salgrid-files-');
    mkdirSync(path.join(dir, 'pretrained'));
    writeFileSync(path.join(dir, 'pretrained', 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: SHARDS, weights: [] }] }));
    SHARDS.forEach((shard, i) => writeFileSync(path.join(dir, 'pretrained', shard), Buffer.alloc(64, i)));
    // Not listed by model.json: no part of the key.
    writeFileSync(path.join(dir, 'pretrained', 'weights.bin'), 'stale');
    writeFileSync(path.join(dir, 'sweep.yaml'), sweep({ training: '{ epochs: 1, pretrained: pretrained/model.json }', explainers: '  - saliency' }));

    const before = plan(dir);
    assert.equal(before.missingData, null);
    const trains = before.tasks.filter((t) => t.stage === 'train');
    assert.equal(trains.length, 2);
    for (const train of trains) assert.deepEqual(train.files?.map(([name]) => name), ['pretrained/model.json', ...SHARDS.map((s) => `pretrained/${s}`)]);

    writeFileSync(path.join(dir, 'pretrained', 'weights.bin'), 'still not listed');
    assert.deepEqual(plan(dir).tasks.map((t) => t.key), before.tasks.map((t) => t.key), 'an unlisted file changed the keys');

    writeFileSync(path.join(dir, 'pretrained', SHARDS[1]), Buffer.alloc(64, 9));
    const after = plan(dir);
    assert.deepEqual(changed(before, after), withDependants(before.tasks, trains));
    const [train] = after.tasks.filter((t) => t.stage === 'train');
    assert.deepEqual(
      train.files?.map(([name, hash], i) => [name, hash === trains[0].files![i][1]]),
      [['pretrained/model.json', true], ...SHARDS.map((s, i) => [`pretrained/${s}`, i !== 1])],
    );

    rmSync(path.join(dir, 'pretrained', SHARDS[2]));
    assert.match(plan(dir).missingData ?? '', new RegExp(`not found: .*${SHARDS[2]}`));
    mistake(cli(['run', 'sweep.yaml'], dir), new RegExp(`Weights file listed in .*model\\.json not found: .*pretrained/${SHARDS[2]}`));
  });

  it('a baseline image keys the explain tasks that use it, and their dependants only', () => {
    const dir = tempDir('salgrid-files-');
    writeFileSync(path.join(dir, 'baseline.png'), 'first baseline');
    const explainers = [
      '  - saliency',
      '  - { id: occlusion, params: { window: 8, stride: 8, baseline: [blurred, baseline.png] } }',
      '  - { id: integrated-gradients, params: { steps: 4, baseline: baseline.png } }',
      '  - { id: gradient-shap, params: { baselines: [zeros, baseline.png, baseline.png] } }',
      '  - { id: smoothgrad, params: { method: deeplift, methodParams: { baseline: ./baseline.png } } }',
    ].join('\n');
    writeFileSync(path.join(dir, 'sweep.yaml'), sweep({ explainers }));

    const before = plan(dir);
    assert.equal(before.missingData, null);
    const explains = before.tasks.filter((t) => t.stage === 'explain');
    const readers = explains.filter((t) => JSON.stringify(t.params.explainer).includes('baseline.png'));
    assert.equal(readers.length, 8);
    for (const task of readers) assert.deepEqual(task.files?.map(([name]) => name), ['baseline.png']);
    for (const task of before.tasks) if (task.stage !== 'index' && !readers.includes(task)) assert.equal(task.files, undefined, task.label);

    // Moving the project changes no key: the file is keyed by its manifest-relative path.
    const moved = tempDir('salgrid-files-moved-');
    cpSync(dir, moved, { recursive: true });
    assert.deepEqual(plan(moved).tasks.map((t) => t.key), before.tasks.map((t) => t.key));

    writeFileSync(path.join(dir, 'baseline.png'), 'second baseline');
    assert.deepEqual(changed(before, plan(dir)), withDependants(before.tasks, readers));

    rmSync(path.join(dir, 'baseline.png'));
    assert.match(plan(dir).missingData ?? '', /Baseline image of occlusion not found: .*baseline\.png/);
    mistake(cli(['run', 'sweep.yaml'], dir), /Baseline image of occlusion not found: .*baseline\.png/);
  });

  it('plugins declare their files: a rerun follows the file, and plan --why names it', () => {
    const dir = tempDir('salgrid-files-');
    makePointsDataset(path.join(dir, 'data'));
    const fixtures = pathToFileURL(FIXTURE_PLUGINS).href;
    const errors = pathToFileURL(path.join(ROOT, 'src/core/errors.ts')).href;
    // An explainer and a metric whose params name a file they read: the fixture's, with a param taken from that file.
    writeFileSync(
      path.join(dir, 'file-plugins.mjs'),
      `import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MissingInputError } from ${JSON.stringify(errors)};
import { difference, mass } from ${JSON.stringify(fixtures)};
const fileOf = (dir, name) => {
  const file = path.resolve(dir, name);
  if (!existsSync(file)) throw new MissingInputError(file, 'Param file');
  return file;
};
const read = (dir, name) => JSON.parse(readFileSync(fileOf(dir, name), 'utf8'));
const params = { type: 'object', additionalProperties: false, properties: { from: { type: 'string' } }, required: ['from'] };
export default [
  { ...difference, id: 'powered', params, paramFiles: (p, dir) => [fileOf(dir, p.from)],
    explain: (ctx) => difference.explain({ ...ctx, params: { power: read(ctx.manifestDir, ctx.params.from), delayMs: 0, crashOnce: false } }) },
  { ...mass, id: 'thresholded', params, paramFiles: (p, dir) => [fileOf(dir, p.from)],
    score: (ctx) => mass.score({ ...ctx, params: { threshold: read(ctx.manifestDir, ctx.params.from), failFor: '' } }) },
];
`,
    );
    writeFileSync(path.join(dir, 'power.json'), '2');
    writeFileSync(path.join(dir, 'threshold.json'), '0.5');
    const manifest = fixtureManifest({ k: 2, explainers: '  - difference\n  - { id: powered, params: { from: power.json } }', metrics: '  - mass\n  - { id: thresholded, params: { from: threshold.json } }' });
    writeFileSync(path.join(dir, 'sweep.yaml'), manifest.replace(/^plugins: \[(.*)\]$/m, 'plugins: [$1, ./file-plugins.mjs]'));

    const first = plan(dir);
    const powered = first.tasks.filter((t) => t.stage === 'explain' && t.cell.explainer === 'powered');
    const thresholded = first.tasks.filter((t) => t.stage === 'score' && t.cell.metric === 'thresholded');
    for (const task of powered) assert.deepEqual(task.files?.map(([name]) => name), ['power.json']);
    for (const task of thresholded) assert.deepEqual(task.files?.map(([name]) => name), ['threshold.json']);
    ok(cli(['run', 'sweep.yaml'], dir));

    writeFileSync(path.join(dir, 'power.json'), '3');
    const after = plan(dir, '--why');
    const toRun = after.tasks.filter((t) => !t.cached);
    assert.deepEqual(new Set(toRun.map((t) => t.label)), new Set(first.tasks.filter((t) => withDependants(first.tasks, powered).has(t.key)).map((t) => t.label)));
    for (const task of toRun.filter((t) => t.stage === 'explain')) assert.match(task.why ?? '', /: file contents changed: power\.json$/);
    for (const task of toRun.filter((t) => t.stage === 'score')) assert.match(task.why ?? '', /its explain input\(s\) changed/);
    const text = ok(cli(['plan', 'sweep.yaml', '--why'], dir)).stdout;
    assert.match(text, /explain powered · centroid fold 1: differs from \w+: file contents changed: power\.json/);

    rmSync(path.join(dir, 'threshold.json'));
    mistake(cli(['run', 'sweep.yaml'], dir), /Param file not found: .*threshold\.json/);
  });
});
