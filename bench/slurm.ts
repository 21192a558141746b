/**
 * What the Slurm executor costs per task, against a real cluster (here:
 * scripts/start-slurm.sh's one-node cluster): 100 and 1,000 tasks whose jobs
 * do nothing but publish their artifact (`mkdir` of the cache entry, no
 * Node start-up), run through salgrid's executor and Slurm lane exactly as
 * `salgrid run --executor slurm` runs them (preflight, re-attach listing,
 * submissions, one squeue per poll, the DAG walk, the artifact check).
 *
 * Baselines measured in the same run, on the same tasks:
 *   - "sbatch loop": the hand-written alternative — sbatch every job in a
 *     shell-like loop, then poll squeue until all have completed. What Slurm
 *     itself needs; salgrid's extra wall time per task is the difference.
 *   - "local": the same tasks through the same executor with a lane that
 *     runs each job script as a local process (no scheduler at all).
 * Also the CPU time of this (the submitting) process per task, and the
 * number of squeue/sacct calls.
 *
 * Run: node --import tsx bench/slurm.ts [--tasks 100,1000] [--poll 2]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Executor } from '../src/core/exec/executor.ts';
import type { Lanes, TaskLane } from '../src/core/exec/lane.ts';
import type { ProgressSink } from '../src/core/exec/progress.ts';
import type { TaskOutcome } from '../src/core/exec/run-task.ts';
import { SlurmClient } from '../src/core/exec/slurm/client.ts';
import { runCommand } from '../src/core/exec/slurm/commands.ts';
import type { SlurmConfig } from '../src/core/exec/slurm/config.ts';
import { slurmLanes } from '../src/core/exec/slurm/lanes.ts';
import { jobOptions, jobScript, logDir } from '../src/core/exec/slurm/submission.ts';
import { sha256 } from '../src/core/plan/keys.ts';
import type { Plan, Task } from '../src/core/plan/planner.ts';
import { EventLog } from '../src/core/store/events.ts';
import { Store } from '../src/core/store/store.ts';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const sizes = arg('tasks', '100,1000').split(',').map(Number);
const pollSeconds = Number(arg('poll', '2'));
/** Jobs the one-node test cluster runs at once (2 cores, OverSubscribe=FORCE:4): the local baseline gets as many. */
const LOCAL_SLOTS = 8;

const ping = await runCommand('scontrol', ['ping']).catch(() => undefined);
if (!ping || !/is UP/.test(ping.stdout)) {
  console.error('bench/slurm.ts needs a Slurm cluster answering `scontrol ping` (as root: bash scripts/start-slurm.sh).');
  process.exit(1);
}

const quiet: ProgressSink = {
  begin() {},
  taskQueued() {},
  taskStarted() {},
  taskWaiting() {},
  taskProgress() {},
  taskFinished() {},
  taskRetry() {},
  taskFailed: (task, message) => console.error(`  failed: ${task.key.slice(0, 10)}: ${message}`),
  taskSkipped() {},
  warn: (_key, message) => console.error(`  warning: ${message}`),
  output() {},
  end() {},
};

/** N independent score tasks; the job of each only publishes (creates) its cache entry. */
function benchPlan(root: string, n: number, run: string): Plan {
  const tasks: Task[] = Array.from({ length: n }, (_, i) => ({
    key: sha256(`${run}-${i}`),
    stage: 'score',
    pool: 'cpu',
    inputs: [],
    refs: {},
    label: `score ${i}`,
    cell: {},
    plugin: null,
    material: {} as Task['material'],
    cached: false,
  }));
  return { name: 'bench', manifestFile: path.join(root, 'bench.yaml'), manifestDir: root, plugins: [], tasks };
}

const publishCommand = (store: Store) => (task: Task) => ['mkdir', '-p', store.dir(task.stage, task.key)];

interface Measure {
  wallMs: number;
  cpuMs: number;
  squeue?: number;
  sacct?: number;
}

function measured<T>(body: () => Promise<T>): Promise<{ result: T } & Measure> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  return body().then((result) => {
    const used = process.cpuUsage(cpu);
    return { result, wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1000 };
  });
}

const unusedLane: TaskLane = {
  concurrency: 1,
  run: () => Promise.reject(new Error('every bench task goes to Slurm')),
  stop() {},
  abort() {},
  close() {},
};

async function viaSalgrid(root: string, n: number): Promise<Measure> {
  const run = `salgrid-${n}`;
  const store = new Store(path.join(root, run, 'cache'));
  const sweepDir = path.join(root, run, 'bench');
  const events = new EventLog(path.join(sweepDir, 'events.jsonl'));
  const plan = benchPlan(root, n, run);
  const config: SlurmConfig = { gpusPerTask: 0, extraArgs: [], maxJobs: 100, pollSeconds, localStages: [] };
  const { result, ...measure } = await measured(async () => {
    const lanes = await slurmLanes({
      config,
      jobs: { sweep: 'bench', sweepDir },
      plan,
      toRun: plan.tasks,
      store,
      events,
      progress: quiet,
      local: { gpu: unusedLane, cpu: unusedLane },
      command: publishCommand(store),
      where: (option) => `execution.slurm.${option}`,
    });
    const summary = await new Executor({ plan, store, events, lanes, retries: 0, failFast: false, progress: quiet }).run();
    if (summary.ran !== n) throw new Error(`salgrid ran ${summary.ran} of ${n} tasks (${summary.failed} failed)`);
    return lanes.watcher.calls;
  });
  return { ...measure, squeue: result.squeue, sacct: result.sacct };
}

/** The hand-written way: sbatch each job in turn, then poll squeue until every one has completed. */
async function viaSbatchLoop(root: string, n: number): Promise<Measure> {
  const run = `loop-${n}`;
  const store = new Store(path.join(root, run, 'cache'));
  const jobs = { sweep: 'bench', sweepDir: path.join(root, run, 'bench') };
  mkdirSync(logDir(jobs), { recursive: true });
  const plan = benchPlan(root, n, run);
  const client = new SlurmClient();
  const config: SlurmConfig = { gpusPerTask: 0, extraArgs: [], maxJobs: n, pollSeconds, localStages: [] };
  let polls = 0;
  const { wallMs, cpuMs } = await measured(async () => {
    const ids: string[] = [];
    for (const task of plan.tasks) ids.push(await client.submit(jobOptions(task, config, jobs), jobScript(task, publishCommand(store)(task), 1)));
    for (;;) {
      polls++;
      const states = await client.queue(ids);
      if (ids.every((id) => states.get(id)?.state === 'COMPLETED')) break;
      await sleep(pollSeconds * 1000);
    }
  });
  return { wallMs, cpuMs, squeue: polls };
}

/** The same executor with each job script run as a local process: no scheduler in the way. */
async function viaLocalProcesses(root: string, n: number): Promise<Measure> {
  const run = `local-${n}`;
  const store = new Store(path.join(root, run, 'cache'));
  const events = new EventLog(path.join(root, run, 'bench', 'events.jsonl'));
  const plan = benchPlan(root, n, run);
  const command = publishCommand(store);
  const lane: TaskLane = {
    concurrency: LOCAL_SLOTS,
    run: (task) =>
      new Promise<TaskOutcome>((resolve, reject) => {
        const child = spawn('sh', ['-c', jobScript(task, command(task), 1)], { stdio: 'ignore', env: { ...process.env, SLURM_JOB_ID: '0' } });
        child.on('error', reject);
        child.on('close', (code) => (code === 0 && store.has(task.stage, task.key) ? resolve({ status: 'published' }) : reject(new Error(`exit ${code}`))));
      }),
    stop() {},
    abort() {},
    close() {},
  };
  const lanes: Lanes = { of: () => lane, all: () => [lane] };
  const { wallMs, cpuMs } = await measured(async () => {
    const summary = await new Executor({ plan, store, events, lanes, retries: 0, failFast: false, progress: quiet }).run();
    if (summary.ran !== n) throw new Error(`local ran ${summary.ran} of ${n}`);
  });
  return { wallMs, cpuMs };
}

const root = path.join(os.tmpdir(), `salgrid-bench-slurm-${process.pid}`);
const perTask = (m: Measure, n: number) => m.wallMs / n;
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
console.log(`Slurm executor overhead; poll every ${pollSeconds} s, maxJobs 100; ${os.cpus().length} cores, Node ${process.version}`);
console.log('| tasks | way | wall | ms / task | ratio to sbatch loop | CPU ms / task (this process) | squeue / sacct calls |');
console.log('|---:|---|---:|---:|---:|---:|---:|');
try {
  for (const n of sizes) {
    const loop = await viaSbatchLoop(root, n);
    const salgrid = await viaSalgrid(root, n);
    const local = await viaLocalProcesses(root, n);
    for (const [way, m] of [
      ['sbatch loop', loop],
      ['salgrid', salgrid],
      ['local processes', local],
    ] as const) {
      const calls = m.squeue !== undefined ? `${m.squeue} / ${m.sacct ?? 0}` : '—';
      console.log(`| ${n} | ${way} | ${(m.wallMs / 1000).toFixed(1)} s | ${fmt(perTask(m, n))} | ${(m.wallMs / loop.wallMs).toFixed(2)}× | ${fmt(m.cpuMs / n)} | ${calls} |`);
    }
    console.log(`| ${n} | salgrid − sbatch loop | | ${fmt(perTask(salgrid, n) - perTask(loop, n))} | | | |`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
