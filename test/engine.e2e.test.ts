import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { seededRandom } from '../src/core/random.ts';
import { RESULT_TABLES } from '../src/core/report/aggregate.ts';
import { EventLog, type RunEvent } from '../src/core/store/events.ts';
import { cli, cliAsync, fileSnapshot, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

/** A project folder with a points dataset and a manifest. */
function project(manifest = fixtureManifest(), data = {}): string {
  const dir = tempDir();
  makePointsDataset(path.join(dir, 'data'), data);
  writeFileSync(path.join(dir, 'sweep.yaml'), manifest);
  return dir;
}

const events = (dir: string, name = 'demo') => EventLog.read(path.join(dir, 'runs', name, 'events.jsonl'));

function publishCounts(list: RunEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of list) if (e.type === 'publish') counts.set(e.key!, (counts.get(e.key!) ?? 0) + 1);
  return counts;
}

function cacheSnapshot(dir: string): Map<string, string> {
  const cache = path.join(dir, 'runs', 'cache');
  const files = new Map<string, string>();
  for (const stage of readdirSync(cache).filter((n) => !n.startsWith('.'))) {
    for (const [file, text] of fileSnapshot(path.join(cache, stage))) files.set(`${stage}/${file}`, text);
  }
  return files;
}

function planJson(dir: string) {
  const result = cli(['plan', 'sweep.yaml', '--json'], dir);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as { stages: { stage: string; total: number; cached: number; toRun: number }[]; tasks: { key: string; stage: string; label: string; cached: boolean; inputs: string[] }[] };
}

const slow = fixtureManifest({
  models: '  - { id: centroid, params: { delayMs: 60 } }',
  explainers: '  - { id: difference, params: { delayMs: 15 } }\n  - { id: difference, params: { power: 2, delayMs: 15 } }',
});

describe('sweep execution', () => {
  it('runs a sweep end to end; a second run does no work and says so', () => {
    const dir = project();
    const first = cli(['run', 'sweep.yaml'], dir);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /finished in .*: 28 run, 0 cached, 0 failed, 0 skipped/);
    for (const table of RESULT_TABLES) for (const ext of ['csv', 'json']) assert.ok(existsSync(path.join(dir, `runs/demo/results/${table}.${ext}`)), `${table}.${ext}`);
    const classification = JSON.parse(readFileSync(path.join(dir, 'runs/demo/results/classification.json'), 'utf8')) as Record<string, number>[];
    assert.deepEqual(Object.keys(classification[0]), ['model', 'fold', 'accuracy', 'precision', 'recall', 'f1', 'macroPrecision', 'macroRecall', 'macroF1', 'n']);
    assert.ok(existsSync(path.join(dir, 'runs/demo/report.html')));
    const second = cli(['run', 'sweep.yaml'], dir);
    assert.equal(second.code, 0);
    assert.match(second.stdout, /nothing to do: all 28 tasks are cached/);
    assert.equal(events(dir).filter((e) => e.type === 'start').length, 28);
    const status = JSON.parse(cli(['status', 'sweep.yaml', '--json'], dir).stdout) as { stages: { done: number; total: number }[] };
    assert.ok(status.stages.every((s) => s.done === s.total));
  });

  it('never runs more tensor tasks at once than workers.gpu', () => {
    const dir = project(fixtureManifest({ ...{ workers: '{ gpu: 2, cpu: 2 }' }, models: '  - { id: centroid, params: { delayMs: 40 } }', explainers: '  - { id: difference, params: { delayMs: 10 } }' }));
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr);
    const tensor = new Set(['train', 'predict', 'explain']);
    const edges: [number, number][] = [];
    for (const e of events(dir)) {
      if (!tensor.has(e.stage ?? '') && !(e.stage === 'score' && false)) continue;
      if (e.type === 'start') edges.push([Date.parse(e.time), +1]);
      if (e.type === 'publish' || e.type === 'fail') edges.push([Date.parse(e.time), -1]);
    }
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let running = 0;
    let peak = 0;
    for (const [, delta] of edges) peak = Math.max(peak, (running += delta));
    assert.ok(peak <= 2, `saw ${peak} tensor tasks at once`);
    assert.equal(peak, 2, 'two tensor workers should overlap at some point');
  });

  it('two runs on the same cache at once publish every task exactly once', async () => {
    const dir = project(slow);
    const a = cliAsync(['run', 'sweep.yaml'], dir);
    await sleep(150);
    const b = cliAsync(['run', 'sweep.yaml'], dir);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.stderr + ra.stdout);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    const counts = publishCounts(events(dir));
    assert.equal(counts.size, 28);
    assert.ok([...counts.values()].every((n) => n === 1));
  });

  it('killed at random moments and re-run, it ends byte-identical to an uninterrupted run, publishing nothing twice', async () => {
    const reference = project(slow);
    assert.equal(cli(['run', 'sweep.yaml'], reference).code, 0);

    const dir = project(slow);
    const random = seededRandom(42);
    let kills = 0;
    for (let round = 0; round < 8; round++) {
      const run = cliAsync(['run', 'sweep.yaml'], dir);
      const wait = 600 + random() * 1400;
      const killed = await Promise.race([sleep(wait).then(() => true), run.done.then(() => false)]);
      if (!killed) break;
      run.child.kill('SIGKILL');
      await run.done;
      kills++;
    }
    assert.ok(kills >= 2, `only ${kills} kill(s) landed before the sweep finished`);
    const final = cli(['run', 'sweep.yaml'], dir);
    assert.equal(final.code, 0, final.stderr + final.stdout);

    assert.deepEqual(fileSnapshot(path.join(dir, 'runs/demo/results')), fileSnapshot(path.join(reference, 'runs/demo/results')));
    const [got, want] = [cacheSnapshot(dir), cacheSnapshot(reference)];
    assert.deepEqual([...got.keys()], [...want.keys()]);
    for (const [file, text] of want) assert.equal(got.get(file), text, `${file} differs`);
    const counts = publishCounts(events(dir));
    assert.equal(counts.size, 28);
    for (const [key, n] of counts) assert.equal(n, 1, `${key} published ${n} times`);
    const staging = path.join(dir, 'runs/cache/.staging');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], []);
  });

  it('replaces a crashed worker and retries its task', () => {
    const dir = project(fixtureManifest({ explainers: '  - { id: difference, params: { crashOnce: true } }', metrics: '  - mass' }));
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const list = events(dir);
    assert.equal(list.filter((e) => e.type === 'retry').length, 3);
    assert.ok([...publishCounts(list).values()].every((n) => n === 1));
  });

  it('a failing task skips its dependants, the rest goes on, and the exit code is 2', () => {
    const dir = project(fixtureManifest({ metrics: '  - { id: mass, params: { failFor: difference } }\n  - zeroing', explainers: '  - difference' }));
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 2, result.stderr + result.stdout);
    assert.match(result.stdout, /3 failed, 2 skipped/);
    assert.match(result.stdout, /failed: score mass · difference · centroid fold 1 \[[0-9a-f]{10}\]: mass deliberately fails for difference/);
    const list = events(dir);
    assert.equal(list.filter((e) => e.type === 'fail').length, 3);
    assert.deepEqual(list.filter((e) => e.type === 'skip').map((e) => e.stage).sort(), ['aggregate', 'report']);
    assert.equal(list.filter((e) => e.type === 'publish' && e.stage === 'score').length, 3, 'the zeroing scores still ran');
    const status = JSON.parse(cli(['status', 'sweep.yaml', '--json'], dir).stdout) as { stages: { stage: string; failed: number; skipped: number }[] };
    assert.equal(status.stages.find((s) => s.stage === 'score')!.failed, 3);
    assert.equal(status.stages.find((s) => s.stage === 'report')!.skipped, 1);
  });

  it('--only runs what the named stages need and stops there; --dry-run runs nothing', () => {
    const dir = project();
    const dry = cli(['run', 'sweep.yaml', '--only', 'train', '--dry-run'], dir);
    assert.equal(dry.code, 0);
    assert.match(dry.stdout, /--only train: 5 of these would run/);
    assert.equal(existsSync(path.join(dir, 'runs/cache/train')), false);
    const result = cli(['run', 'sweep.yaml', '--only', 'train'], dir);
    assert.equal(result.code, 0, result.stderr);
    const published = new Set(events(dir).filter((e) => e.type === 'publish').map((e) => e.stage));
    assert.deepEqual([...published].sort(), ['index', 'split', 'train']);
  });

  it('stops cleanly on SIGINT with exit code 130, and the next run resumes', async () => {
    const dir = project(slow);
    const run = cliAsync(['run', 'sweep.yaml'], dir);
    // Interrupt once a few tasks are done, however loaded the machine is.
    for (let i = 0; i < 400 && events(dir).filter((e) => e.type === 'publish').length < 3; i++) await sleep(50);
    run.child.kill('SIGINT');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr + result.stdout);
    assert.match(result.stdout, /interrupted in .*left for the next run/);
    const starts = events(dir).filter((e) => e.type === 'start').length;
    assert.equal(events(dir).filter((e) => e.type === 'publish').length, starts, 'tasks running at the interrupt finished');
    const again = cli(['run', 'sweep.yaml'], dir);
    assert.equal(again.code, 0);
    assert.match(again.stdout, new RegExp(`finished in .*: ${28 - starts} run, ${starts} cached, 0 failed`));
    assert.equal(publishCounts(events(dir)).size, 28);
  });
});

describe('planning', () => {
  it('changing one metric param re-runs only that metric’s scores, the aggregate and the report; --why names the param', () => {
    const dir = project();
    assert.equal(cli(['run', 'sweep.yaml'], dir).code, 0);
    const before = planJson(dir);
    assert.ok(before.tasks.every((t) => t.cached));
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ metrics: '  - { id: mass, params: { threshold: 0.8 } }\n  - zeroing' }));
    const after = planJson(dir);
    const toRun = after.tasks.filter((t) => !t.cached);
    assert.deepEqual(toRun.map((t) => t.stage).sort(), ['aggregate', 'report', ...new Array(6).fill('score')].sort());
    assert.ok(toRun.filter((t) => t.stage === 'score').every((t) => t.label.startsWith('score mass ·')));
    const why = cli(['plan', 'sweep.yaml', '--why'], dir);
    assert.match(why.stdout, /score mass · difference\[power=1\] · centroid fold 1: differs from [0-9a-f]{10}: params\.metric\.threshold: 0\.5 → 0\.8/);
    assert.match(why.stdout, /report: differs from [0-9a-f]{10}: its aggregate input\(s\) changed/);
  });

  it('counts tasks and names the missing path when the dataset is absent; run refuses with one sentence', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
    const plan = cli(['plan', 'sweep.yaml'], dir);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /sweep demo: 28 tasks, 0 cached, 28 to run/);
    assert.match(plan.stdout, /data missing: dataset folder not found: .*data/);
    const run = cli(['run', 'sweep.yaml'], dir);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^salgrid: dataset folder not found: .*data \(create it or fix dataset.params.dir\)\.\n$/);
    assert.equal(cli(['validate', 'sweep.yaml'], dir).code, 0, 'validate never needs data');
  });

  it('validate exits 1 with positions and no stack trace', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'bad.yaml'), fixtureManifest({ models: '  - centroidd' }));
    const result = cli(['validate', 'bad.yaml'], dir);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /bad\.yaml:\d+:\d+: \/models\/0: unknown architecture "centroidd"; did you mean "centroid"\?/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('plan --dot draws the DAG', () => {
    const dir = project();
    const dot = cli(['plan', 'sweep.yaml', '--dot'], dir);
    assert.match(dot.stdout, /^digraph "demo" \{/);
    assert.equal((dot.stdout.match(/ -> /g) ?? []).length, planJson(dir).tasks.reduce((n, t) => n + t.inputs.length, 0));
  });
});

describe('single tasks and the cache', () => {
  it('task run <key> runs one planned task in a fresh process', () => {
    const dir = project();
    assert.equal(cli(['run', 'sweep.yaml', '--only', 'split'], dir).code, 0);
    const plan = planJson(dir);
    const train = plan.tasks.find((t) => t.stage === 'train')!;
    const blocked = cli(['task', 'run', plan.tasks.find((t) => t.stage === 'predict')!.key], dir);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /input train [0-9a-f]{10} of predict centroid fold 1 is not in the cache/);
    const result = cli(['task', 'run', train.key.slice(0, 12)], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /train centroid fold 1: published/);
    assert.ok(existsSync(path.join(dir, 'runs/cache/train', train.key, 'model.json')));
    assert.match(cli(['task', 'run', train.key], dir).stdout, /already in the cache/);
  });

  it('gc lists, then removes, what no plan refers to', () => {
    const dir = project();
    assert.equal(cli(['run', 'sweep.yaml'], dir).code, 0);
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ metrics: '  - zeroing' }));
    assert.equal(cli(['run', 'sweep.yaml'], dir).code, 0);
    const dry = cli(['gc', 'sweep.yaml'], dir);
    assert.match(dry.stdout, /would remove 8 artifact\(s\)/);
    assert.equal(cli(['gc', 'sweep.yaml', '--apply'], dir).code, 0);
    assert.match(cli(['gc', 'sweep.yaml'], dir).stdout, /would remove 0 artifact\(s\)/);
    assert.match(cli(['run', 'sweep.yaml'], dir).stdout, /nothing to do/);
  });
});

describe('aborting', () => {
  it('a second Ctrl-C aborts running tasks, their checkpoints stay, and the next run resumes from them', async () => {
    const dir = project(fixtureManifest({ models: '  - { id: centroid, params: { delayMs: 250 } }', extra: 'training: { epochs: 12 }\n' }).replace('training: { epochs: 3 }\n', ''));
    const run = cliAsync(['run', 'sweep.yaml'], dir);
    const staging = path.join(dir, 'runs/cache/.staging');
    const checkpointEpoch = () => {
      for (const name of existsSync(staging) ? readdirSync(staging) : []) {
        const file = path.join(staging, name, 'checkpoint.json');
        if (name.startsWith('train-') && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')).epoch as number;
      }
      return 0;
    };
    // Up to a minute: on a busy 2-core machine (the whole suite runs in parallel) start-up alone can take seconds.
    for (let i = 0; i < 1200 && checkpointEpoch() < 2; i++) await sleep(50);
    run.child.kill('SIGINT');
    await sleep(100);
    run.child.kill('SIGINT');
    const result = await run.done;
    assert.equal(result.code, 130, result.stdout + result.stderr);
    const saved = checkpointEpoch();
    assert.ok(saved >= 2 && saved < 12, `checkpoint at epoch ${saved}`);
    assert.equal(events(dir).filter((e) => e.type === 'fail').length, 0, 'an abort is not a failure');
    const again = cli(['run', 'sweep.yaml'], dir);
    assert.equal(again.code, 0, again.stderr);
    const firstProgress = again.stdout.split('\n').find((line) => line.includes('train centroid fold 1:'));
    assert.equal(firstProgress?.trim(), `train centroid fold 1: ${saved + 1}/12 epochs`);
  });
});
