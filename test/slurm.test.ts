/**
 * The Slurm executor without a cluster: parsing of sbatch/squeue/sacct
 * output, state mapping, job options and scripts, refusals, job logs, the
 * watcher's polling, the lane's judgement of ended jobs and re-attachment,
 * all against fake command output; and the CLI's one-sentence errors with
 * no sbatch on PATH and with a fake sbatch that refuses. The real cluster
 * is in test/slurm.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../src/core/errors.ts';
import { TaskInterrupted } from '../src/core/exec/lane.ts';
import type { ProgressSink } from '../src/core/exec/progress.ts';
import { SlurmClient, SlurmUnavailable, SubmissionRejected } from '../src/core/exec/slurm/client.ts';
import { SlurmCommandMissing, runCommand, type CommandResult, type CommandRunner } from '../src/core/exec/slurm/commands.ts';
import type { SlurmConfig } from '../src/core/exec/slurm/config.ts';
import { logTail, salgridFailure } from '../src/core/exec/slurm/job-log.ts';
import { SlurmLane } from '../src/core/exec/slurm/lane.ts';
import { slurmLanes } from '../src/core/exec/slurm/lanes.ts';
import { parseSacct, parseSbatchId, parseSqueue } from '../src/core/exec/slurm/parse.ts';
import { reattach } from '../src/core/exec/slurm/reattach.ts';
import { blamedOptions, rejectionMessage } from '../src/core/exec/slurm/rejection.ts';
import { failureOf, isLive, jobPhase } from '../src/core/exec/slurm/states.ts';
import { jobComment, jobName, jobOptions, jobScript, logFile, resourceOptions, type SweepJobs } from '../src/core/exec/slurm/submission.ts';
import { JobWatcher } from '../src/core/exec/slurm/watcher.ts';
import { TaskError } from '../src/core/exec/worker-pool.ts';
import { resolveManifest } from '../src/core/manifest/resolve.ts';
import { ManifestSource } from '../src/core/manifest/source.ts';
import type { Task } from '../src/core/plan/planner.ts';
import { Registry } from '../src/core/plugins/registry.ts';
import { EventLog } from '../src/core/store/events.ts';
import { Store } from '../src/core/store/store.ts';
import fixtures from './fixtures/plugins/points.ts';
import { cli, fixtureManifest, makePointsDataset, mistake, tempDir } from './helpers.ts';

const config = (overrides: Partial<SlurmConfig> = {}): SlurmConfig => ({ gpusPerTask: 0, extraArgs: [], maxJobs: 100, pollSeconds: 10, localStages: ['index', 'split', 'aggregate', 'report'], ...overrides });

const task = (stage: Task['stage'], key: string, pool: Task['pool'] = 'gpu'): Task => ({
  key,
  stage,
  pool,
  inputs: [],
  refs: {},
  label: `${stage} centroid fold 1`,
  cell: {},
  plugin: null,
  material: {} as Task['material'],
  cached: false,
});

const KEY = 'ab'.repeat(32);

describe('parsing Slurm output', () => {
  it('reads the job id sbatch --parsable prints, with or without a cluster, after warnings', () => {
    assert.equal(parseSbatchId('4211\n'), '4211');
    assert.equal(parseSbatchId('4211;gpu-cluster\n'), '4211');
    assert.equal(parseSbatchId('sbatch: warning: partition has no default time\n77\n'), '77');
    assert.equal(parseSbatchId('Submitted batch job 5\n'), undefined);
  });

  it('reads squeue lines: states normalised, a comment may hold the separator', () => {
    const jobs = parseSqueue('12|PENDING|Resources|salgrid:demo:train:0123456789|salgrid /runs/a|b\n13|RUNNING|None\n\n14|CANCELLED+|None\n');
    assert.deepEqual(jobs, [
      { id: '12', state: 'PENDING', reason: 'Resources', name: 'salgrid:demo:train:0123456789', comment: 'salgrid /runs/a|b' },
      { id: '13', state: 'RUNNING', reason: 'None' },
      { id: '14', state: 'CANCELLED', reason: 'None' },
    ]);
  });

  it('reads sacct lines: one per job, steps left out, "CANCELLED by 0" is CANCELLED', () => {
    const jobs = parseSacct('20|COMPLETED|0:0\n20.batch|COMPLETED|0:0\n21|CANCELLED by 0|0:15\n22|OUT_OF_MEMORY|0:125\n');
    assert.deepEqual(
      jobs.map((j) => [j.id, j.state, j.reason]),
      [
        ['20', 'COMPLETED', 'exit code 0:0'],
        ['21', 'CANCELLED', 'exit code 0:15'],
        ['22', 'OUT_OF_MEMORY', 'exit code 0:125'],
      ],
    );
  });

  it('maps every state to a phase; only failures a retry can mend are retried', () => {
    for (const state of ['PENDING', 'CONFIGURING', 'REQUEUED']) assert.equal(jobPhase(state), 'queued', state);
    for (const state of ['RUNNING', 'COMPLETING', 'SUSPENDED', 'SOME_FUTURE_STATE']) assert.equal(jobPhase(state), 'running', state);
    assert.equal(jobPhase('COMPLETED'), 'completed');
    for (const state of ['FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'CANCELLED', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE']) {
      assert.equal(jobPhase(state), 'failed', state);
      assert.equal(isLive(state), false);
    }
    assert.ok(isLive('PENDING') && isLive('RUNNING'));
    assert.equal(failureOf('TIMEOUT').retry, true);
    assert.match(failureOf('OUT_OF_MEMORY').hint!, /execution\.slurm\.mem/);
    assert.equal(failureOf('CANCELLED').retry, false, 'a cancelled job was someone’s decision');
  });
});

describe('job submission', () => {
  const jobs: SweepJobs = { sweep: 'demo', sweepDir: '/shared/runs/demo' };

  it('asks for GPUs for tensor tasks only, and only when gpusPerTask > 0; extraArgs come last', () => {
    const full = config({ partition: 'gpu', account: 'lab', qos: 'normal', time: '2:00:00', mem: '16G', cpusPerTask: 4, gpusPerTask: 1, extraArgs: ['--constraint=a100'] });
    assert.deepEqual(resourceOptions(full, 'gpu'), ['--partition=gpu', '--account=lab', '--qos=normal', '--time=2:00:00', '--mem=16G', '--cpus-per-task=4', '--gres=gpu:1', '--constraint=a100']);
    assert.deepEqual(resourceOptions(full, 'cpu'), ['--partition=gpu', '--account=lab', '--qos=normal', '--time=2:00:00', '--mem=16G', '--cpus-per-task=4', '--constraint=a100']);
    assert.deepEqual(resourceOptions(config(), 'gpu'), [], 'a CPU-only cluster needs no configuration');
  });

  it('names the job after sweep, stage and key, logs to runs/<name>/slurm/<key>.out, and marks it with the sweep folder', () => {
    const options = jobOptions(task('train', KEY), config({ partition: 'debug' }), jobs);
    assert.deepEqual(options, [`--job-name=salgrid:demo:train:${KEY.slice(0, 10)}`, `--output=/shared/runs/demo/slurm/${KEY}.out`, '--open-mode=append', '--comment=salgrid /shared/runs/demo', '--partition=debug']);
    assert.equal(jobName('demo', task('score', KEY)), `salgrid:demo:score:${KEY.slice(0, 10)}`);
    assert.equal(logFile(jobs, KEY), `/shared/runs/demo/slurm/${KEY}.out`);
    assert.equal(jobComment(jobs), 'salgrid /shared/runs/demo');
  });

  it('writes a job script whose command survives spaces and quotes', () => {
    const script = jobScript(task('train', KEY), ['printf', '%s\\n', '/my runs/x', "it's", '$HOME'], 2);
    assert.match(script, /^#!\/bin\/sh\n/);
    const result = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, SLURM_JOB_ID: '42' } });
    assert.equal(result.status, 0, result.stderr);
    const [header, ...args] = result.stdout.trim().split('\n');
    assert.match(header, /^=== job 42, attempt 2, on \S+ at \S+: train abababab/);
    assert.deepEqual(args, ['/my runs/x', "it's", '$HOME']);
  });
});

describe('refused submissions', () => {
  const where = (option: string) => `sweep.yaml:14:${option.length}`;

  it('quotes sbatch verbatim and names the option at fault with its place in the manifest and the fix', () => {
    const stderr = 'sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid partition name specified\n';
    const message = rejectionMessage(stderr, config({ partition: 'gpu' }), where);
    assert.equal(
      message,
      'sweep.yaml:14:9: Slurm refused execution.slurm.partition ("gpu"): "sbatch: error: invalid partition specified: gpu; sbatch: error: Batch job submission failed: Invalid partition name specified"; use a partition that `sinfo` lists.',
    );
    assert.doesNotMatch(message, /\n/);
  });

  it('blames the account for an account/partition combination, sizes for an impossible node, extraArgs when nothing else fits', () => {
    assert.deepEqual(blamedOptions('sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified', config({ account: 'x', partition: 'y' })), ['account']);
    assert.deepEqual(blamedOptions('allocation failure: Requested node configuration is not available', config({ mem: '900G', cpusPerTask: 2 })), ['mem', 'cpusPerTask']);
    assert.deepEqual(blamedOptions('sbatch: error: Invalid generic resource (gres) specification', config({ gpusPerTask: 2 })), ['gpusPerTask']);
    assert.deepEqual(blamedOptions('sbatch: error: Invalid --time specification', config({ time: '99:99' })), ['time']);
    assert.deepEqual(blamedOptions('sbatch: error: something odd', config({ extraArgs: ['--foo'] })), ['extraArgs']);
    assert.match(rejectionMessage('sbatch: error: something odd', config(), where), /^Slurm refused the job: "sbatch: error: something odd"; check execution\.slurm/);
  });
});

describe('job logs', () => {
  it('reads the last attempt of a log and the sentence salgrid printed', () => {
    const dir = tempDir();
    const file = path.join(dir, 'job.out');
    writeFileSync(
      file,
      [
        '=== job 1, attempt 1, on n1 at 2026-01-01T00:00:00Z: train abc',
        'salgrid: internal error (please report it):',
        'TypeError: x is undefined',
        '    at f (a.ts:1:1)',
        '=== job 2, attempt 2, on n2 at 2026-01-01T00:01:00Z: train abc',
        'salgrid: Slurm job 2 on n2 cannot see input split 0123456789 of train centroid fold 1 at /runs/cache/split/0123, which the submitting machine published: the cache is not visible from the compute nodes; put runs/ (--runs) on a filesystem that the submitting machine and every compute node mount at the same path.',
        '',
      ].join('\n'),
    );
    const tail = logTail(file);
    assert.equal(tail.length, 2, 'only the last attempt');
    const failure = salgridFailure(tail)!;
    assert.equal(failure.userError, true);
    assert.match(failure.message, /^Slurm job 2 on n2 cannot see input split/);
    assert.deepEqual(salgridFailure(['salgrid: internal error (please report it):', 'TypeError: x is undefined', '    at f']), { message: 'TypeError: x is undefined', userError: false });
    assert.equal(salgridFailure(['some output']), undefined);
    assert.deepEqual(logTail(path.join(dir, 'missing.out')), []);
  });
});

/** A fake Slurm: answers each command from a handler, counting calls. */
function fakeRunner(handler: (command: string, args: string[], input?: string) => Partial<CommandResult>): CommandRunner & { calls: { command: string; args: string[] }[] } {
  const calls: { command: string; args: string[] }[] = [];
  const run = async (command: string, args: string[], input?: string) => {
    calls.push({ command, args });
    return { code: 0, stdout: '', stderr: '', ...handler(command, args, input) };
  };
  return Object.assign(run, { calls });
}

const idsOf = (args: string[]) => args.find((a) => a.startsWith('--jobs='))!.slice('--jobs='.length).split(',');

describe('SlurmClient', () => {
  it('treats an unknown job list as empty, no accounting as undefined, and busy controllers as transient', async () => {
    const client = new SlurmClient(
      fakeRunner((command, args) => {
        if (command === 'squeue') return { code: 1, stderr: 'slurm_load_jobs error: Invalid job id specified\n' };
        if (command === 'sacct') return { code: 1, stderr: 'Slurm accounting storage is disabled\n' };
        if (command === 'sbatch' && args.includes('--test-only')) return { code: 1, stderr: 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n' };
        if (command === 'sbatch') return { code: 1, stderr: 'sbatch: error: invalid partition specified: x\n' };
        return { code: 1, stderr: 'scancel: error: Kill job error on job id 5: Job/step already completing or completed\n' };
      }),
    );
    assert.deepEqual(await client.queue(['1', '2']), new Map());
    assert.equal(await client.accounting(['1']), undefined);
    await assert.rejects(client.check([], ''), SlurmUnavailable);
    await assert.rejects(client.submit([], ''), (error) => error instanceof SubmissionRejected && /invalid partition/.test(error.stderr));
    await client.cancel(['5']);
  });

  it('says which command is missing from PATH, as one sentence with the fix', async () => {
    const saved = process.env.PATH;
    process.env.PATH = tempDir();
    try {
      await assert.rejects(runCommand('sbatch', ['--version']), (error) => error instanceof SlurmCommandMissing && error instanceof UserError && /`sbatch` is not on PATH.*--executor local/.test(error.message));
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe('JobWatcher', () => {
  it('asks squeue once per poll for all jobs, follows them to their end, and asks sacct for those squeue forgot', async () => {
    const states = new Map([
      ['1', ['PENDING', 'RUNNING', 'COMPLETED']],
      ['2', ['PENDING', 'PENDING', 'PENDING', 'FAILED']],
      ['3', ['RUNNING']],
    ]);
    let poll = 0;
    const runner = fakeRunner((command, args) => {
      if (command === 'sacct') return { stdout: idsOf(args).includes('3') ? '3|TIMEOUT|0:15\n' : '' };
      poll++;
      const lines = idsOf(args).flatMap((id) => {
        const list = states.get(id)!;
        // Job 3 leaves squeue after its first poll.
        if (id === '3' && poll > 1) return [];
        return [`${id}|${list[Math.min(poll - 1, list.length - 1)]}|None`];
      });
      return { stdout: lines.join('\n') };
    });
    const watcher = new JobWatcher(new SlurmClient(runner), 5, () => {});
    const phases: string[] = [];
    const ends = await Promise.all(['1', '2', '3'].map((id) => watcher.watch(id, (phase) => phases.push(`${id}:${phase}`))));
    assert.deepEqual(
      ends.map((e) => [e.id, e.state, e.seenBy]),
      [
        ['1', 'COMPLETED', 'squeue'],
        ['2', 'FAILED', 'squeue'],
        ['3', 'TIMEOUT', 'sacct'],
      ],
    );
    assert.deepEqual(phases.sort(), ['1:running', '3:running']);
    const squeues = runner.calls.filter((c) => c.command === 'squeue');
    assert.equal(squeues.length, 4, 'one squeue per poll, for every job at once');
    assert.deepEqual(idsOf(squeues[0].args), ['1', '2', '3']);
    assert.equal(watcher.calls.squeue, 4);
  });

  it('without accounting, settles a job squeue forgot only after two polls, and stops asking sacct', async () => {
    const runner = fakeRunner((command) => (command === 'sacct' ? { code: 1, stderr: 'Slurm accounting storage is disabled' } : { stdout: '' }));
    const watcher = new JobWatcher(new SlurmClient(runner), 5, () => {});
    const end = await watcher.watch('9');
    assert.deepEqual(end, { id: '9', state: 'UNKNOWN', reason: '', seenBy: 'nowhere' });
    assert.equal(runner.calls.filter((c) => c.command === 'squeue').length, 2);
    assert.equal(runner.calls.filter((c) => c.command === 'sacct').length, 1);
  });

  it('backs off while squeue fails, warns once it keeps failing, and carries on when it answers again', async () => {
    let poll = 0;
    const times: number[] = [];
    const runner = fakeRunner(() => {
      times.push(Date.now());
      poll++;
      return poll <= 3 ? { code: 1, stderr: 'squeue: error: slurm_receive_msg: Socket timed out on send/recv operation' } : { stdout: '4|COMPLETED|None' };
    });
    const warnings: string[] = [];
    const watcher = new JobWatcher(new SlurmClient(runner), 10, (message) => warnings.push(message));
    const end = await watcher.watch('4');
    assert.equal(end.state, 'COMPLETED');
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /squeue failed: .*Socket timed out.*asking again in \d+ s/);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps[2] > gaps[0], `waits grow: ${gaps.join(', ')} ms`);
  });

  it('detaching leaves every job to itself: waiting tasks are interrupted, not failed', async () => {
    const watcher = new JobWatcher(new SlurmClient(fakeRunner(() => ({ stdout: '5|RUNNING|None' }))), 5, () => {});
    const waiting = watcher.watch('5');
    watcher.detach('left running on the cluster');
    await assert.rejects(waiting, TaskInterrupted);
    assert.deepEqual(watcher.watching, []);
  });
});

const silentProgress = (): ProgressSink & { seen: string[] } => {
  const seen: string[] = [];
  return {
    seen,
    begin() {},
    taskQueued: (t, note) => seen.push(`queued ${t.stage} ${note}`),
    taskStarted: (t, note) => seen.push(`running ${t.stage} ${note}`),
    taskWaiting() {},
    taskProgress() {},
    taskFinished() {},
    taskRetry() {},
    taskFailed() {},
    taskSkipped() {},
    warn() {},
    output() {},
    end() {},
  };
};

/** A lane over a fake Slurm whose jobs end in `final` (publishing their artifact when `publish`). */
function laneWith(options: { final: string; publish?: boolean; log?: string; sbatch?: Partial<CommandResult>; attached?: Map<string, { job: string; state: string }> }) {
  const dir = tempDir();
  const store = new Store(path.join(dir, 'runs', 'cache'));
  const events = new EventLog(path.join(dir, 'runs', 'demo', 'events.jsonl'));
  const jobs = { sweep: 'demo', sweepDir: path.join(dir, 'runs', 'demo') };
  const the = task('train', KEY);
  let polls = 0;
  const runner = fakeRunner((command) => {
    if (command === 'sbatch') return options.sbatch ?? { stdout: '77\n' };
    polls++;
    if (polls === 1) return { stdout: '77|RUNNING|None\n' };
    if (options.publish) mkdirSync(store.dir('train', KEY), { recursive: true });
    if (options.log) {
      mkdirSync(path.dirname(logFile(jobs, KEY)), { recursive: true });
      writeFileSync(logFile(jobs, KEY), options.log);
    }
    return { stdout: `77|${options.final}|${options.final === 'COMPLETED' ? 'None' : 'NonZeroExitCode'}\n` };
  });
  const client = new SlurmClient(runner);
  const progress = silentProgress();
  const lane = new SlurmLane({
    client,
    watcher: new JobWatcher(client, 5, () => {}),
    config: config({ partition: 'debug' }),
    jobs,
    store,
    events,
    progress,
    command: (t) => ['salgrid', 'task', 'run', t.key],
    attached: options.attached ?? new Map(),
    where: (option) => `sweep.yaml:3:4 (${option})`,
    publishGraceMs: 0,
  });
  return { lane, task: the, events, runner, progress, jobs };
}

describe('SlurmLane', () => {
  it('submits a task, sees its job run and complete, finds the artifact: published, with the job recorded', async () => {
    const { lane, task: the, events, runner, progress } = laneWith({ final: 'COMPLETED', publish: true });
    const outcome = await lane.run(the, 1);
    assert.equal(outcome.status, 'published');
    const sbatch = runner.calls.find((c) => c.command === 'sbatch')!;
    assert.ok(sbatch.args.includes('--parsable') && sbatch.args.includes('--partition=debug'));
    assert.deepEqual(progress.seen, ['queued train job 77', 'running train job 77']);
    const recorded = events.read().filter((e) => e.type.startsWith('slurm-'));
    assert.deepEqual(
      recorded.map((e) => [e.type, e.job, e.key, e.state]),
      [
        ['slurm-submit', '77', KEY, undefined],
        ['slurm-end', '77', KEY, 'COMPLETED'],
      ],
    );
    assert.deepEqual(lane.liveJobs(), new Map());
  });

  it('a FAILED job fails the task with the sentence salgrid left in its log, the log path, and the log tail as detail', async () => {
    const log = '=== job 77, attempt 1\nsalgrid: Slurm job 77 on n1 cannot see input split 0123456789 of train centroid fold 1 at /x: the cache is not visible from the compute nodes; put runs/ (--runs) on a filesystem that the submitting machine and every compute node mount at the same path.\n';
    const { lane, task: the } = laneWith({ final: 'FAILED', log });
    await assert.rejects(lane.run(the, 1), (error) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.userError, true, 'no retry: it would fail the same way');
      assert.match(error.message, /^Slurm job 77 on n1 cannot see input split .* mount at the same path \(job 77 FAILED, log .*slurm\/abab.*\.out\)$/);
      assert.match(error.detail!, /last lines of .*\.out:\n=== job 77/);
      return true;
    });
  });

  it('a job killed by Slurm (out of memory) fails with the state’s meaning, retryable', async () => {
    const { lane, task: the } = laneWith({ final: 'OUT_OF_MEMORY', log: '=== job 77\nKilled\n' });
    await assert.rejects(lane.run(the, 1), (error) => error instanceof TaskError && !error.userError && /^job 77 ran out of memory \(OUT_OF_MEMORY\): raise execution\.slurm\.mem; log \S+\.out$/.test(error.message));
  });

  it('a COMPLETED job whose artifact is not visible here says the cache is not shared', async () => {
    const { lane, task: the } = laneWith({ final: 'COMPLETED', publish: false });
    await assert.rejects(lane.run(the, 1), (error) => error instanceof TaskError && error.userError && /completed, yet its artifact is not in the cache this machine sees .*filesystem shared by this machine and the compute nodes/.test(error.message));
  });

  it('a refused submission fails the task with the one-sentence refusal, not retried', async () => {
    const { lane, task: the } = laneWith({ final: 'COMPLETED', sbatch: { code: 1, stderr: 'sbatch: error: invalid partition specified: debug\n' } });
    await assert.rejects(lane.run(the, 1), (error) => error instanceof TaskError && error.userError && /^sweep\.yaml:3:4 \(partition\): Slurm refused execution\.slurm\.partition \("debug"\): "sbatch: error: invalid partition specified: debug"/.test(error.message));
  });

  it('watches a job an earlier run left instead of submitting the task again', async () => {
    const { lane, task: the, runner, events } = laneWith({ final: 'COMPLETED', publish: true, attached: new Map([[KEY, { job: '77', state: 'RUNNING' }]]) });
    assert.deepEqual(lane.attachedJobs(), ['77']);
    assert.equal((await lane.run(the, 1)).status, 'published');
    assert.equal(runner.calls.filter((c) => c.command === 'sbatch').length, 0);
    assert.deepEqual(
      events.read().map((e) => e.type),
      ['slurm-attach', 'slurm-end'],
    );
  });

  it('after stop nothing more is submitted', async () => {
    const { lane, task: the, runner } = laneWith({ final: 'COMPLETED', publish: true });
    lane.stop();
    await assert.rejects(lane.run(the, 1), TaskInterrupted);
    assert.equal(runner.calls.length, 0);
  });
});

describe('re-attaching', () => {
  it('finds recorded live jobs and unrecorded ones of this sweep folder, records what ended unwatched, and ignores namesakes', async () => {
    const dir = tempDir();
    const jobs = { sweep: 'demo', sweepDir: path.join(dir, 'runs', 'demo') };
    const events = new EventLog(path.join(jobs.sweepDir, 'events.jsonl'));
    const keys = ['11'.repeat(32), '22'.repeat(32), '33'.repeat(32), '44'.repeat(32)];
    const tasks = keys.map((k) => task('train', k));
    events.append({ type: 'slurm-submit', key: keys[0], stage: 'train', job: '100' });
    events.append({ type: 'slurm-submit', key: keys[1], stage: 'train', job: '101' });
    events.append({ type: 'slurm-submit', key: keys[3], stage: 'train', job: '99' });
    const comment = jobComment(jobs);
    const runner = fakeRunner(() => ({
      stdout: [
        `100|RUNNING|None|salgrid:demo:train:${keys[0].slice(0, 10)}|${comment}`,
        `101|FAILED|NonZeroExitCode|salgrid:demo:train:${keys[1].slice(0, 10)}|${comment}`,
        // Submitted by a run killed before it could record it.
        `102|PENDING|Priority|salgrid:demo:train:${keys[2].slice(0, 10)}|${comment}`,
        // The same sweep name in another folder: someone else's.
        `103|PENDING|Priority|salgrid:demo:train:${keys[3].slice(0, 10)}|salgrid /elsewhere/runs/demo`,
        '104|RUNNING|None|an-unrelated-job|',
      ].join('\n'),
    }));
    const attached = await reattach(new SlurmClient(runner), events, jobs, tasks);
    assert.equal(runner.calls.length, 1, 'one squeue call');
    assert.deepEqual(runner.calls[0].args.slice(0, 2), ['--noheader', '--states=all']);
    assert.deepEqual(
      [...attached].sort(),
      [
        [keys[0], { job: '100', state: 'RUNNING' }],
        [keys[2], { job: '102', state: 'PENDING' }],
      ],
    );
    const added = events.read().slice(3);
    assert.deepEqual(
      added.map((e) => [e.type, e.job, e.state, e.recovered]),
      [
        ['slurm-end', '99', 'UNKNOWN', undefined],
        ['slurm-end', '101', 'FAILED', undefined],
        ['slurm-submit', '102', undefined, true],
      ],
    );
  });
});

describe('the manifest', () => {
  const registry = new Registry();
  for (const plugin of fixtures) registry.register(plugin, 'fixture');
  const base = 'name: demo\ndataset:\n  source: points\n  params: { dir: data }\nmodels: [centroid]\n';

  it('fills in the slurm defaults', () => {
    const manifest = resolveManifest(ManifestSource.parse('m.yaml', `${base}execution: { executor: slurm }\n`), registry);
    assert.equal(manifest.execution.executor, 'slurm');
    assert.deepEqual(manifest.execution.slurm, { gpusPerTask: 0, extraArgs: [], maxJobs: 100, pollSeconds: 10, localStages: ['index', 'split', 'aggregate', 'report'] });
  });

  it('reports slurm mistakes as file:line:col', () => {
    const text = `${base}execution:\n  executor: slurmm\n  slurm:\n    partiton: gpu\n    time: 2h\n    localStages: [index, explian]\n`;
    try {
      resolveManifest(ManifestSource.parse('m.yaml', text), registry);
      assert.fail('expected problems');
    } catch (error) {
      assert.ok(error instanceof UserError);
      const details = error.details.join('\n');
      assert.match(details, /m\.yaml:7:13: \/execution\/executor: must be one of "local", "slurm", got "slurmm"/);
      assert.match(details, /m\.yaml:9:5: \/execution\/slurm\/partiton: unknown field "partiton"; did you mean "partition"\?/);
      assert.match(details, /m\.yaml:10:11: \/execution\/slurm\/time: must match pattern/);
      assert.match(details, /m\.yaml:11:26: \/execution\/slurm\/localStages\/1: must be one of "index", .*got "explian"/);
    }
  });
});

describe('salgrid run --executor slurm without a usable Slurm', () => {
  const project = (extra = '') => {
    const dir = tempDir();
    makePointsDataset(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ k: 2, explainers: '  - difference', metrics: '  - mass' }).replace(/execution: .*\n/, `execution: { backend: cpu, slurm: { partition: gpu${extra} } }\n`));
    return dir;
  };

  it('says sbatch is missing from PATH, in one sentence, before running anything', () => {
    const dir = project();
    mistake(cli(['run', 'sweep.yaml', '--executor', 'slurm'], dir, { PATH: tempDir() }), /`sbatch` is not on PATH.*login node.*--executor local/);
    assert.equal(existsSync(path.join(dir, 'runs', 'demo', 'plan.json')), false, 'nothing recorded, nothing ran');
  });

  it('quotes a refusal of sbatch with the option and its place in the manifest', () => {
    const dir = project();
    const bin = tempDir();
    writeFileSync(path.join(bin, 'sbatch'), '#!/bin/sh\necho "sbatch: error: invalid partition specified: gpu" >&2\necho "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2\nexit 1\n');
    chmodSync(path.join(bin, 'sbatch'), 0o755);
    const result = cli(['run', 'sweep.yaml', '--executor', 'slurm'], dir, { PATH: `${bin}:${process.env.PATH}` });
    mistake(result, /^salgrid: sweep\.yaml:\d+:\d+: Slurm refused execution\.slurm\.partition \("gpu"\): "sbatch: error: invalid partition specified: gpu; .*"; use a partition that `sinfo` lists\.$/);
  });

  it('--executor takes local or slurm', () => {
    mistake(cli(['run', 'sweep.yaml', '--executor', 'kubernetes'], project()), /--executor takes local or slurm, got "kubernetes"/);
  });
});

describe('one submitting run per sweep', () => {
  it('refuses a second run while the first submits the sweep’s jobs, and lets one in once it is done', async () => {
    const dir = tempDir();
    const the = task('train', KEY);
    const unused = { concurrency: 1, run: () => Promise.reject(new Error('unused')), stop() {}, abort() {}, close() {} };
    const options = {
      config: config(),
      jobs: { sweep: 'demo', sweepDir: path.join(dir, 'runs', 'demo') },
      plan: { name: 'demo', manifestFile: 'sweep.yaml', manifestDir: dir, plugins: [], tasks: [the] },
      toRun: [the],
      store: new Store(path.join(dir, 'runs', 'cache')),
      events: new EventLog(path.join(dir, 'runs', 'demo', 'events.jsonl')),
      progress: silentProgress(),
      local: { gpu: unused, cpu: unused },
      command: () => ['true'],
      where: () => 'sweep.yaml:1:1',
      client: new SlurmClient(fakeRunner(() => ({ stdout: '' }))),
    };
    const first = await slurmLanes(options);
    await assert.rejects(slurmLanes(options), (error) => error instanceof UserError && /^another `salgrid run` \(pid \d+ on \S+\) is submitting the Slurm jobs of sweep demo; let it finish or stop it/.test(error.message));
    first.slurm.close();
    (await slurmLanes(options)).slurm.close();
  });
});
