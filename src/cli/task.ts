import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { Task } from '../core/plan/planner.ts';
import { EventLog } from '../core/store/events.ts';
import { Store } from '../core/store/store.ts';
import { createRegistry, readPlanFile, sweepPaths, type PlanFile } from '../core/sweep.ts';
import type { BackendRequest } from '../core/tensor/backend-names.ts';
import { backendRecord } from '../core/tensor/backend-names.ts';
import { parseBackend, parseThreadsHere, runsDir } from './context.ts';
import { print } from './output.ts';

/** Set inside a Slurm job: the node it runs on. */
const slurmNode = () => (process.env.SLURM_JOB_ID ? (process.env.SLURMD_NODENAME ?? os.hostname()) : undefined);
const SHARED_FS = 'the cache is not visible from the compute nodes; put runs/ (--runs) on a filesystem that the submitting machine and every compute node mount at the same path.';

function findTask(runs: string, key: string): { plan: PlanFile; task: Task; events: string } {
  const names = existsSync(runs) ? readdirSync(runs).filter((n) => n !== 'cache') : [];
  const matches: { plan: PlanFile; task: Task; events: string }[] = [];
  for (const name of names) {
    const paths = sweepPaths(runs, name);
    if (!existsSync(paths.plan)) continue;
    const plan = readPlanFile(paths.plan);
    const task = plan.tasks.find((t) => t.key === key || (key.length >= 8 && t.key.startsWith(key)));
    if (task) matches.push({ plan, task, events: paths.events });
  }
  if (matches.length === 0) {
    if (slurmNode()) throw new UserError(`Slurm job ${process.env.SLURM_JOB_ID} on ${slurmNode()} finds no recorded plan with task ${key} under ${runs}: ${SHARED_FS}`);
    throw new UserError(`no recorded plan under ${runs} has a task with key ${key}; run \`salgrid run <manifest> --dry-run\` or check --runs.`);
  }
  const keys = new Set(matches.map((m) => m.task.key));
  if (keys.size > 1) throw new UserError(`key prefix ${key} matches ${keys.size} tasks; give more of the key.`);
  return matches.sort((a, b) => b.plan.created.localeCompare(a.plan.created))[0];
}

export function registerTask(program: Command): void {
  const task = program.command('task').description('work with single tasks of a recorded plan');
  task
    .command('run <key>')
    .description('run one planned task by itself in this process (what remote executors call)')
    .option('--backend <name>', 'tensor backend for a tensor task (default: the manifest’s execution.backend)')
    .option('--threads <n>', 'intra-op threads of the onnx engine (default: the manifest’s execution.threads, else every core this job may use)')
    .action(async (key: string, options: { backend?: string; threads?: string }, command: Command) => {
      const runs = runsDir(command);
      const found = findTask(runs, key);
      const store = new Store(path.join(runs, 'cache'));
      for (const input of found.task.inputs) {
        const stage = found.plan.tasks.find((t) => t.key === input)?.stage;
        if (stage && !store.has(stage, input)) {
          if (slurmNode()) throw new UserError(`Slurm job ${process.env.SLURM_JOB_ID} on ${slurmNode()} cannot see input ${stage} ${input.slice(0, 10)} of ${found.task.label} at ${store.dir(stage, input)}, which the submitting machine published: ${SHARED_FS}`);
          throw new UserError(`input ${stage} ${input.slice(0, 10)} of ${found.task.label} is not in the cache at ${store.dir(stage, input)}; run its upstream tasks first, or make ${store.root} visible on this machine.`);
        }
      }
      const registry = await createRegistry(found.plan.pluginModules[0], found.plan.pluginModules.slice(1), found.plan.manifestDir);
      const execution = (found.plan.manifest.execution ?? {}) as { backend?: BackendRequest; threads?: number | 'auto'; allowSoftwareAdapter?: boolean };
      // One task in this process: the onnx engine may use every core it is given (a Slurm job: those of its allocation).
      const cores = os.availableParallelism();
      const threadsOption = parseThreadsHere(options.threads);
      const threads = threadsOption ?? (typeof execution.threads === 'number' ? Math.min(execution.threads, cores) : undefined);
      const tensors = found.task.pool === 'gpu' ? await import('../core/tensor/backend.ts') : undefined;
      const backend = tensors && (await tensors.initBackend(parseBackend(options.backend) ?? execution.backend ?? 'auto', { allowSoftwareAdapter: execution.allowSoftwareAdapter, threads }));
      if (tensors && backend) print(tensors.describeBackend(backend));
      const abort = new AbortController();
      // `on`, not `once`: a scheduler's SIGTERM can arrive twice (to the CLI's waiting process, which passes it on, and here).
      process.on('SIGTERM', () => abort.abort());
      // Loaded here: the stage code (tables, report) is only needed when a task runs.
      const { executeTask } = await import('../core/exec/run-task.ts');
      for (;;) {
        const outcome = await executeTask(found.task, {
          registry,
          store,
          events: new EventLog(found.events),
          manifestDir: found.plan.manifestDir,
          attempt: 1,
          signal: abort.signal,
          backend: backend && backendRecord(backend),
          progress: (done, total, note) => print(`${found.task.label}: ${done}/${total}${note ? ` ${note}` : ''}`),
          warn: (message) => print(`warning: ${message}`),
        });
        if (outcome.status === 'busy') {
          await sleep(1000);
          continue;
        }
        print(outcome.status === 'cached' ? `${found.task.label}: already in the cache.` : `${found.task.label}: published ${found.task.key}.`);
        return;
      }
    });
}
