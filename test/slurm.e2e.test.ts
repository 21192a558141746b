/**
 * The Slurm executor end to end, through the real CLI, against a real
 * Slurm cluster (on CI and here: the one-node cluster of
 * scripts/start-slurm.sh, jobs running on this machine over the same
 * runs/). The same tiny sweep runs locally and through Slurm and must end
 * byte for byte the same; a submitting run killed with SIGKILL and started
 * again must submit no task twice; failures, Ctrl-C with and without a
 * terminal, `salgrid cancel` and a wrong partition say what happened.
 *
 * Without sbatch (or with no controller answering) the tests skip
 * themselves, saying so; with SALGRID_REQUIRE_SLURM=1 (CI) they run and fail
 * instead.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, describe, it } from 'node:test';
import { EventLog, type RunEvent } from '../src/core/store/events.ts';
import { BIN, cli, cliAsync, fileSnapshot, fixtureManifest, makePointsDataset, mistake, ok, tempDir } from './helpers.ts';

const required = process.env.SALGRID_REQUIRE_SLURM === '1';
const hasSbatch = spawnSync('sbatch', ['--version']).status === 0;
const controllerUp = hasSbatch && /is UP/.test(spawnSync('scontrol', ['ping'], { encoding: 'utf8' }).stdout ?? '');
const hasScript = spawnSync('script', ['--version']).status === 0;
const skip = required
  ? false
  : !hasSbatch
    ? 'no sbatch on PATH (`bash scripts/start-slurm.sh` installs and starts a one-node cluster as root); CI runs these tests'
    : !controllerUp
      ? 'sbatch is here but no Slurm controller answers `scontrol ping` (`bash scripts/start-slurm.sh` starts one)'
      : false;

/**
 * Two folds of one slow-ish model (so jobs are still live when the
 * submitter is killed), one explainer, a map-only and a model-calling metric:
 * 10 Slurm jobs (train, predict, explain, 2 scores per fold), index, split,
 * aggregate and report local. The executor comes from --executor, so the
 * local and the Slurm run read the very same manifest.
 */
function manifest(metrics = '  - mass\n  - zeroing', slurm = 'pollSeconds: 0.5'): string {
  return fixtureManifest({ k: 2, models: '  - { id: centroid, params: { delayMs: 1500 } }', explainers: '  - difference', metrics }).replace(
    /execution: .*\n/,
    `execution: { backend: cpu, workers: { gpu: 2, cpu: 2 }, retries: 1, slurm: { ${slurm} } }\n`,
  );
}

const REMOTE_TASKS = 10;

function project(text = manifest()): string {
  const dir = tempDir('salgrid-slurm-');
  makePointsDataset(path.join(dir, 'data'));
  writeFileSync(path.join(dir, 'sweep.yaml'), text);
  return dir;
}

const events = (dir: string): RunEvent[] => EventLog.read(path.join(dir, 'runs', 'demo', 'events.jsonl'));
const submissions = (dir: string) => events(dir).filter((e) => e.type === 'slurm-submit');

/** The results and every cached artifact, which must not depend on where the tasks ran. */
function outputs(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const [file, text] of fileSnapshot(path.join(dir, 'runs', 'demo', 'results'))) files.set(`results/${file}`, text);
  const cache = path.join(dir, 'runs', 'cache');
  for (const stage of readdirSync(cache).filter((n) => !n.startsWith('.'))) for (const [file, text] of fileSnapshot(path.join(cache, stage))) files.set(`cache/${stage}/${file}`, text);
  return files;
}

function assertSameOutputs(dir: string, reference: string): void {
  const [got, want] = [outputs(dir), outputs(reference)];
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [file, text] of want) assert.equal(got.get(file), text, `${file} differs between the Slurm and the local run`);
}

/** The jobs Slurm knows of a project's sweep (told apart from other sweeps by their comment, the sweep folder). */
function clusterJobs(dir: string): { id: string; state: string; name: string }[] {
  const result = spawnSync('squeue', ['--noheader', '--states=all', '--format=%i|%T|%j|%k'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const comment = `salgrid ${path.join(dir, 'runs', 'demo')}`;
  return result.stdout
    .split('\n')
    .map((line) => line.split('|'))
    .filter((fields) => fields.slice(3).join('|').trim() === comment)
    .map(([id, state, name]) => ({ id: id.trim(), state: state.trim(), name: name.trim() }));
}

function countBy<T>(items: T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('the Slurm executor on a real cluster', { skip }, () => {
  let reference = '';
  let slurmRun = '';

  before(() => {
    reference = project();
    ok(cli(['run', 'sweep.yaml'], reference));
  });

  it('runs the sweep as jobs and ends byte for byte like the local run', () => {
    slurmRun = project();
    const result = ok(cli(['run', 'sweep.yaml', '--executor', 'slurm'], slurmRun));
    assert.match(result.stdout, /slurm: 10 task\(s\) as jobs, at most 100 at once; index, split, aggregate, report here/);
    assert.match(result.stdout, /finished in .*: 14 run, 0 cached, 0 failed, 0 skipped/);
    assertSameOutputs(slurmRun, reference);

    // Each remote task ran once, as its own job, from `salgrid task run` (whose events name no orchestrating run).
    const submitted = submissions(slurmRun);
    assert.equal(submitted.length, REMOTE_TASKS);
    assert.ok([...countBy(submitted, (e) => e.key!).values()].every((n) => n === 1));
    const remoteStages = new Set(submitted.map((e) => e.stage));
    assert.deepEqual([...remoteStages].sort(), ['explain', 'predict', 'score', 'train']);
    for (const start of events(slurmRun).filter((e) => e.type === 'start')) assert.equal(start.run === undefined, remoteStages.has(start.stage!), `${start.stage} ran where it should`);
    const ends = events(slurmRun).filter((e) => e.type === 'slurm-end');
    assert.deepEqual(ends.map((e) => e.state), new Array(REMOTE_TASKS).fill('COMPLETED'));
    const jobs = clusterJobs(slurmRun);
    assert.deepEqual(jobs.map((j) => j.id).sort(), submitted.map((e) => e.job as string).sort());
    assert.ok(jobs.every((j) => j.state === 'COMPLETED' && /^salgrid:demo:(train|predict|explain|score):[0-9a-f]{10}$/.test(j.name)));
    for (const e of submitted) assert.match(readFileSync(path.join(slurmRun, 'runs', 'demo', 'slurm', `${e.key}.out`), 'utf8'), new RegExp(`=== job ${e.job}, attempt 1`));
  });

  it('a task that fails in its job: the sentence of its log, the log path and tail, retried per retries, dependants skipped', () => {
    // The previous test's sweep with a metric that fails: only its scores, the aggregate and the report are new.
    writeFileSync(path.join(slurmRun, 'sweep.yaml'), manifest('  - { id: mass, params: { failFor: difference } }'));
    const before = submissions(slurmRun).length;
    const result = cli(['run', 'sweep.yaml', '--executor', 'slurm'], slurmRun);
    assert.equal(result.code, 2, result.stdout + result.stderr);
    assert.match(result.stdout, /finished in .*: 0 run, 8 cached, 2 failed, 2 skipped/);
    assert.match(result.stdout, /failed: score mass · difference · centroid fold 1 \[[0-9a-f]{10}\]: Error: mass deliberately fails for difference \(job \d+ FAILED, log runs\/demo\/slurm\/[0-9a-f]{64}\.out\)/);
    assert.match(result.stdout, /\n {6}salgrid: internal error \(please report it\):\n {6}Error: mass deliberately fails for difference\n/, 'the log tail is shown');
    const added = submissions(slurmRun).slice(before);
    assert.deepEqual([...countBy(added, (e) => e.key!).values()], [2, 2], 'each failing score tried twice (retries: 1)');
    assert.deepEqual(
      events(slurmRun)
        .filter((e) => e.type === 'skip')
        .map((e) => e.stage)
        .sort(),
      ['aggregate', 'report'],
    );
  });

  it('killed with SIGKILL mid-sweep and run again: watches the jobs left instead of submitting them twice, ends like the local run', async () => {
    const dir = project();
    const run = cliAsync(['run', 'sweep.yaml', '--executor', 'slurm'], dir);
    // Both training jobs submitted (each works 4.5 s): the run dies while they are queued or running.
    await until(() => submissions(dir).filter((e) => e.stage === 'train').length === 2, 'the training jobs');
    run.child.kill('SIGKILL');
    await run.done;
    const trainJobs = submissions(dir).map((e) => e.job as string);

    // Another process sees the live jobs: status reads events.jsonl and asks squeue once.
    const status = JSON.parse(ok(cli(['status', 'sweep.yaml', '--json'], dir)).stdout) as { slurmJobs: { job: string; state: string; stage: string }[]; tasks: { stage: string; state: string; message?: string }[] };
    assert.deepEqual(status.slurmJobs.map((j) => j.job).sort(), [...trainJobs].sort());
    assert.ok(status.slurmJobs.every((j) => ['PENDING', 'RUNNING', 'COMPLETING'].includes(j.state) && j.stage === 'train'), JSON.stringify(status.slurmJobs));
    assert.ok(status.tasks.filter((t) => t.stage === 'train').every((t) => /^job \d+ (PENDING|RUNNING|COMPLETING)$/.test(t.message ?? '')));

    const again = ok(cli(['run', 'sweep.yaml', '--executor', 'slurm'], dir));
    assert.match(again.stdout, /slurm: watching 2 job\(s\) an earlier run left queued or running \(\d+, \d+\) instead of submitting them again/);
    assert.match(again.stdout, /finished in .*: 12 run, 2 cached, 0 failed, 0 skipped/);
    assertSameOutputs(dir, reference);

    // No task went to Slurm twice: not by the events, and not by Slurm's own list of the sweep's jobs.
    const all = submissions(dir);
    assert.equal(all.length, REMOTE_TASKS);
    assert.ok([...countBy(all, (e) => e.key!).values()].every((n) => n === 1));
    assert.deepEqual(
      events(dir)
        .filter((e) => e.type === 'slurm-attach')
        .map((e) => e.job)
        .sort(),
      [...trainJobs].sort(),
    );
    const jobs = clusterJobs(dir);
    assert.equal(jobs.length, REMOTE_TASKS);
    assert.ok([...countBy(jobs, (j) => j.name).values()].every((n) => n === 1), 'one job per task name');
    assert.ok(jobs.every((j) => j.state === 'COMPLETED'));
  });

  it('stopped without a terminal, leaves its jobs running and says how to cancel them; `salgrid cancel` does', async () => {
    const dir = project();
    const run = cliAsync(['run', 'sweep.yaml', '--executor', 'slurm'], dir);
    await until(() => submissions(dir).length === 2, 'the training jobs');
    run.child.kill('SIGTERM');
    const stopped = await run.done;
    assert.equal(stopped.code, 130, stopped.stdout + stopped.stderr);
    assert.match(stopped.stdout, /left 2 Slurm job\(s\) running \(\d+, \d+\): `salgrid run sweep\.yaml` watches them again, `salgrid cancel sweep\.yaml` cancels them\./);
    const ids = submissions(dir).map((e) => e.job as string);
    assert.ok(clusterJobs(dir).every((j) => ['PENDING', 'RUNNING'].includes(j.state)), 'still running after the run stopped');

    const cancelled = ok(cli(['cancel', 'sweep.yaml'], dir));
    assert.match(cancelled.stdout, new RegExp(`cancelled 2 job\\(s\\): ${[...ids].sort((a, b) => Number(a) - Number(b)).join(', ')}\\.`));
    await until(() => clusterJobs(dir).every((j) => j.state === 'CANCELLED'), 'Slurm to cancel the jobs', 30_000);
    assert.deepEqual(
      events(dir)
        .filter((e) => e.type === 'slurm-end')
        .map((e) => e.state),
      ['CANCELLED', 'CANCELLED'],
    );
    assert.match(ok(cli(['cancel', 'sweep.yaml'], dir)).stdout, /no Slurm job of sweep demo is queued or running/);
  });

  it('Ctrl-C at a terminal asks whether to cancel the jobs, and cancels them on yes', { skip: hasScript ? false : 'no `script` (util-linux) to give the run a terminal' }, async () => {
    const dir = project();
    // util-linux's `script` gives the run a terminal; what is written to its stdin is typed there (\x03 is Ctrl-C).
    const terminal = spawn('script', ['-qfec', `${process.execPath} ${BIN} run sweep.yaml --executor slurm`, '/dev/null'], { cwd: dir, env: { ...process.env, CI: '1', NO_COLOR: '1' } });
    let output = '';
    terminal.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const closed = new Promise<number | null>((resolve) => terminal.on('close', resolve));
    await until(() => submissions(dir).length === 2, 'the training jobs');
    terminal.stdin.write('\x03');
    await until(() => output.includes('[y/N]'), 'the question');
    assert.match(output, /2 Slurm job\(s\) of this sweep are still queued or running \(\d+, \d+\)\. Cancel them \(scancel\)\? \[y\/N\]/);
    terminal.stdin.write('y\r');
    assert.equal(await closed, 130, output);
    assert.match(output, /cancelled 2 job\(s\)\./);
    const ids = submissions(dir).map((e) => e.job);
    await until(() => clusterJobs(dir).every((j) => j.state === 'CANCELLED'), 'Slurm to cancel the jobs', 30_000);
    assert.deepEqual(
      events(dir)
        .filter((e) => e.type === 'slurm-end')
        .map((e) => [e.job, e.state])
        .sort(),
      ids.map((id) => [id, 'CANCELLED']).sort(),
    );
  });

  it('a partition Slurm does not know: one sentence quoting sbatch, before anything runs', () => {
    const dir = project(manifest(undefined, 'partition: nope'));
    mistake(
      cli(['run', 'sweep.yaml', '--executor', 'slurm'], dir),
      /^salgrid: sweep\.yaml:\d+:\d+: Slurm refused execution\.slurm\.partition \("nope"\): "sbatch: error: invalid partition specified: nope"; use a partition that `sinfo` lists\.$/,
    );
    assert.equal(existsSync(path.join(dir, 'runs', 'demo', 'plan.json')), false);
    assert.deepEqual(clusterJobs(dir), []);
  });
});
