import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Plan, Task } from '../core/plan/planner.ts';
import type { Pool } from '../core/plan/stages.ts';
import type { TaskLane } from '../core/exec/lane.ts';
import type { ProgressSink } from '../core/exec/progress.ts';
import type { SlurmLane } from '../core/exec/slurm/lane.ts';
import { slurmLanes, type SlurmLanes } from '../core/exec/slurm/lanes.ts';
import { logDir } from '../core/exec/slurm/submission.ts';
import type { EventLog } from '../core/store/events.ts';
import type { Sweep } from '../core/sweep.ts';
import type { BackendRequest } from '../core/tensor/backend-names.ts';
import { SALGRID_BIN } from './context.ts';
import { print } from './output.ts';

export interface StartSlurmOptions {
  sweep: Sweep;
  plan: Plan;
  toRun: Task[];
  events: EventLog;
  progress: ProgressSink;
  local: Record<Pool, TaskLane>;
  runs: string;
  /** What each job asks `task run` for; `auto` lets every node choose its best backend. */
  backend: BackendRequest;
  /** --threads given to `salgrid run`, handed on to each job (else a job reads execution.threads, or uses its node's cores). */
  threads?: number;
}

/** The lanes of a slurm run, after sbatch has accepted the options and earlier jobs are found again; says what it found. */
export async function startSlurm(options: StartSlurmOptions): Promise<SlurmLanes> {
  const { sweep, toRun, runs, backend, threads } = options;
  const config = sweep.manifest.execution.slurm;
  const jobs = { sweep: sweep.manifest.name, sweepDir: sweep.paths.dir };
  const lanes = await slurmLanes({
    ...options,
    config,
    jobs,
    store: sweep.store,
    command: (task) => [process.execPath, SALGRID_BIN, '--runs', runs, 'task', 'run', task.key, '--backend', backend, ...(threads !== undefined ? ['--threads', String(threads)] : [])],
    where: (option) => sweep.source.where(`/execution/slurm/${option}`),
  });
  const remote = toRun.filter((t) => !config.localStages.includes(t.stage));
  const asks = [config.partition && `partition ${config.partition}`, config.gpusPerTask > 0 && `${config.gpusPerTask} GPU(s) per tensor job`].filter(Boolean).join(', ');
  print(`slurm: ${remote.length} task(s) as jobs${asks ? ` (${asks})` : ''}, at most ${config.maxJobs} at once; ${config.localStages.join(', ')} here; tensor backend ${backend} on the nodes; logs in ${path.relative(process.cwd(), logDir(jobs)) || '.'}`);
  const attached = [...lanes.slurm.attachedJobs()];
  if (attached.length > 0) print(`slurm: watching ${attached.length} job(s) an earlier run left queued or running (${idList(attached)}) instead of submitting them again`);
  return lanes;
}

const idList = (ids: string[]) => (ids.length <= 6 ? ids.join(', ') : `${ids.slice(0, 5).join(', ')}, … ${ids.at(-1)}`);

/**
 * After an interrupted slurm run: the jobs still queued or running are
 * cancelled if the person at the terminal says so, else left running with
 * the commands that watch or cancel them later.
 */
export async function leaveOrCancelJobs(lane: SlurmLane, options: { ask: boolean; manifestFile: string }): Promise<void> {
  const jobs = lane.liveJobs();
  if (jobs.size === 0) return;
  const ids = [...jobs.keys()];
  if (options.ask && (await confirm(`${jobs.size} Slurm job(s) of this sweep are still queued or running (${idList(ids)}). Cancel them (scancel)? [y/N] `))) {
    await lane.cancel(jobs, 'cancelled at Ctrl-C');
    print(`cancelled ${jobs.size} job(s).`);
    return;
  }
  print(`left ${jobs.size} Slurm job(s) running (${idList(ids)}): \`salgrid run ${options.manifestFile}\` watches them again, \`salgrid cancel ${options.manifestFile}\` cancels them.`);
}

function confirm(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    // Ctrl-C at the question means "get me out", not "cancel the jobs".
    rl.on('SIGINT', () => {
      rl.close();
      process.stderr.write('\n');
      resolve(false);
    });
    rl.question(question, (answer) => {
      rl.close();
      resolve(/^\s*y(es)?\s*$/i.test(answer));
    });
  });
}
