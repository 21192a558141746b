import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { Executor } from '../core/exec/executor.ts';
import { detectGpus } from '../core/exec/gpus.ts';
import type { Lanes } from '../core/exec/lane.ts';
import { PlainProgress, formatDuration, type ProgressSink } from '../core/exec/progress.ts';
import { selectTasks } from '../core/exec/executor.ts';
import { workerLanes } from '../core/exec/worker-lane.ts';
import type { Pool, Stage } from '../core/plan/stages.ts';
import { EventLog } from '../core/store/events.ts';
import { openSweep, planSweep, publishResults, writePlanFile } from '../core/sweep.ts';
import os from 'node:os';
import { sizeTensorWorkers } from '../core/exec/tensor-workers.ts';
import { BACKEND_HELP, BUILTINS, parseBackend, parseExecutor, parseStages, parseThreads, parseWorkers, runsDir } from './context.ts';
import { print } from './output.ts';
import { planHeadline, planTable } from './plan.ts';
import { leaveOrCancelJobs, startSlurm } from './run-slurm.ts';

export const EXIT = { ok: 0, userError: 1, tasksFailed: 2, interrupted: 130 } as const;

interface RunOptions {
  only?: string;
  dryRun?: boolean;
  workers?: string;
  failFast?: boolean;
  retries?: string;
  backend?: string;
  threads?: string;
  executor?: string;
  detach?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run <manifest>')
    .description('run a sweep, or resume it: finished tasks come from the cache')
    .option('--only <stages>', 'run what these stages need (comma-separated) and stop there')
    .option('--dry-run', 'show what would run, run nothing')
    .option('--workers <pools>', 'pool sizes, e.g. gpu=2,cpu=4 (overrides execution.workers)')
    .option('--retries <n>', 'retries of a task whose worker crashed (overrides execution.retries)')
    .option('--fail-fast', 'stop starting tasks at the first failure')
    .option('--backend <name>', `${BACKEND_HELP} (overrides execution.backend)`)
    .option('--threads <n>', 'intra-op threads of each tensor worker’s onnx engine; workers × threads ≤ cores (overrides execution.threads)')
    .option('--executor <name>', 'local or slurm (overrides execution.executor)')
    .option('--detach', 'slurm: on Ctrl-C leave the jobs running without asking (a later run watches them again)')
    .action(async (manifestFile: string, options: RunOptions, command: Command) => {
      process.exitCode = await runSweep(manifestFile, options, runsDir(command));
    });
}

async function runSweep(manifestFile: string, options: RunOptions, runs: string): Promise<number> {
  const only = parseStages(options.only);
  const sweep = await openSweep(manifestFile, { runsDir: runs, builtins: BUILTINS });
  const plan = await planSweep(sweep);
  if (plan.missingData) throw new UserError(plan.missingData);
  const { execution } = sweep.manifest;
  const gpus = detectGpus(execution.gpus);
  const retries = options.retries !== undefined ? Number(options.retries) : execution.retries;
  if (!Number.isInteger(retries) || retries < 0) throw new UserError(`--retries takes a whole number ≥ 0, got "${options.retries}".`);
  const selected = selectTasks(plan.tasks, only);
  const toRun = selected.filter((t) => !t.cached);
  const executorKind = parseExecutor(options.executor) ?? execution.executor;
  // With slurm, only the local stages run here; the rest choose their backend on their own node.
  const runsHere = executorKind === 'slurm' ? toRun.filter((t) => execution.slurm.localStages.includes(t.stage)) : toRun;

  print(planHeadline(plan));
  if (options.dryRun) {
    print(planTable(plan));
    if (only) print(`--only ${only.join(',')}: ${toRun.length} of these would run.`);
    return EXIT.ok;
  }
  if (toRun.length === 0) {
    print(`nothing to do: all ${selected.length} tasks${only ? ` that ${only.join(',')} needs` : ''} are cached.`);
    const shown = publishResults(plan, sweep.store, sweep.paths);
    printWhere(shown);
    return EXIT.ok;
  }
  const backendRequest = parseBackend(options.backend) ?? execution.backend;
  const threadsOption = parseThreads(options.threads);
  // Only tensor work needs a backend: choose it here, say why, and have every tensor worker start the same one.
  // TensorFlow.js loads only then: plain cpu sweeps start faster without it.
  const tensors = runsHere.some((t) => t.pool === 'gpu') ? await import('../core/tensor/backend.ts') : undefined;
  const chosen = tensors ? await tensors.initBackend(backendRequest, { allowSoftwareAdapter: execution.allowSoftwareAdapter }) : undefined;
  const given = { ...execution.workers, ...parseWorkers(options.workers) };
  const cpuBound = tensors !== undefined && chosen !== undefined && tensors.runsOnCpu(chosen.name, gpus);
  // Tensor workers and the onnx engine's threads share the cores (of this machine: Slurm jobs size theirs on their node).
  const sized = tensors
    ? sizeTensorWorkers({
        cores: os.availableParallelism(),
        gpus,
        cpuBound,
        workers: given.gpu,
        threads: threadsOption ?? execution.threads,
        threadsFrom: threadsOption !== undefined ? '--threads' : 'execution.threads',
      })
    : { workers: given.gpu === 'auto' ? Math.max(1, gpus) : given.gpu, threads: 1 };
  const backend = chosen && (chosen.engine === 'onnx' ? { ...chosen, threads: sized.threads } : chosen);
  if (tensors && backend) print(tensors.describeBackend(backend));
  const workers: Record<Pool, number> = { gpu: sized.workers, cpu: given.cpu };
  const events = new EventLog(sweep.paths.events);
  let lanes: Lanes | undefined;
  const concurrency = (stage: Stage) => {
    const task = selected.find((t) => t.stage === stage);
    return task && lanes ? lanes.of(task).concurrency : 1;
  };
  const live = process.stdout.isTTY && !process.env.CI;
  const progress: ProgressSink = live ? new (await import('../core/exec/listr-progress.ts')).ListrProgress(concurrency) : new PlainProgress(concurrency);
  const local = workerLanes({
    plan,
    store: sweep.store,
    events,
    progress,
    workers,
    pluginModules: sweep.pluginModules,
    gpus,
    backend: backend && { name: backend.name, allowSoftwareAdapter: execution.allowSoftwareAdapter, threads: sized.threads },
  });
  // Checked before the plan is recorded: a wrong partition changes nothing.
  const slurm = executorKind === 'slurm' ? await startSlurm({ sweep, plan, toRun, events, progress, local, runs, backend: backendRequest, threads: threadsOption }) : undefined;
  lanes = slurm ?? { of: (task) => local[task.pool], all: () => [local.gpu, local.cpu] };
  await writePlanFile(sweep, plan);
  events.append({ type: 'sweep-start', run: process.pid, message: `${toRun.length} to run${slurm ? ' (slurm)' : ''}` });
  print(`workers: gpu=${workers.gpu} cpu=${workers.cpu}${gpus > 0 ? `, ${gpus} GPU(s)` : ''}; cache ${sweep.store.root}`);
  const executor = new Executor({ plan, store: sweep.store, events, lanes, retries, failFast: Boolean(options.failFast), only, progress });
  let interrupts = 0;
  let askAboutJobs = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 1 && slurm) {
      process.stderr.write('\nstopping: no new jobs; local tasks finish (Ctrl-C again to abort them)\n');
      // Only a person at a terminal who pressed Ctrl-C is asked; --detach, a pipe or a kill leave the jobs running.
      askAboutJobs = signal === 'SIGINT' && !options.detach && Boolean(process.stdin.isTTY && process.stdout.isTTY);
      executor.stop();
      slurm.slurm.detach();
    } else if (interrupts === 1) {
      process.stderr.write('\nstopping: no new tasks; running ones finish (Ctrl-C again to abort them)\n');
      executor.stop();
    } else {
      process.stderr.write('\naborting running tasks (their checkpoints stay)\n');
      executor.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const summary = await executor.run();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (slurm) await leaveOrCancelJobs(slurm.slurm, { ask: askAboutJobs, manifestFile });
  events.append({ type: 'sweep-end', run: process.pid, message: `${summary.ran} run, ${summary.cached} cached, ${summary.failed} failed, ${summary.skipped} skipped` });

  print();
  print(
    `${summary.interrupted ? 'interrupted' : 'finished'} in ${formatDuration(summary.wallMs)}: ${summary.ran} run, ${summary.cached} cached, ${summary.failed} failed, ${summary.skipped} skipped${summary.notRun ? `, ${summary.notRun} left for the next run` : ''}`,
  );
  for (const failure of summary.failures) {
    print(`  failed: ${failure.task.label} [${failure.task.key.slice(0, 10)}]: ${failure.message}`);
    // A job's log tail (a local task's detail is a stack trace, for the events only).
    if (slurm && failure.detail && lanes.of(failure.task) === slurm.slurm) for (const line of failure.detail.split('\n')) print(`      ${line}`);
  }
  if (summary.failures.length > 0) print(`  details: ${sweep.paths.events}`);
  printWhere(publishResults(plan, sweep.store, sweep.paths));
  if (summary.interrupted) {
    print('run the same command again to resume.');
    return EXIT.interrupted;
  }
  return summary.failed > 0 ? EXIT.tasksFailed : EXIT.ok;
}

function printWhere(shown: { results?: string; report?: string }): void {
  if (shown.results) print(`results: ${shown.results}`);
  if (shown.report) print(`report:  ${shown.report}`);
}
