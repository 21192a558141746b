import path from 'node:path';
import { UserError } from '../../errors.ts';
import type { Plan, Task } from '../../plan/planner.ts';
import type { Pool } from '../../plan/stages.ts';
import type { EventLog } from '../../store/events.ts';
import { FileLock } from '../../store/lock.ts';
import type { Store } from '../../store/store.ts';
import type { Lanes, TaskLane } from '../lane.ts';
import type { ProgressSink } from '../progress.ts';
import { SlurmClient } from './client.ts';
import type { SlurmConfig, SlurmOption } from './config.ts';
import { SlurmLane } from './lane.ts';
import { preflight } from './preflight.ts';
import { reattach } from './reattach.ts';
import { logDir, type SweepJobs } from './submission.ts';
import { JobWatcher } from './watcher.ts';

export interface SlurmLanesOptions {
  config: SlurmConfig;
  jobs: SweepJobs;
  plan: Plan;
  /** The tasks this run will run (not cached, within --only). */
  toRun: Task[];
  store: Store;
  events: EventLog;
  progress: ProgressSink;
  /** Local worker lanes for the stages in `localStages`. */
  local: Record<Pool, TaskLane>;
  command(task: Task): string[];
  where(option: SlurmOption): string;
  client?: SlurmClient;
  publishGraceMs?: number;
}

/**
 * One submitting run per sweep: a second one would find the first's jobs
 * live, watch them too and submit the same ready tasks again.
 */
function submitterLock(jobs: SweepJobs): FileLock {
  const file = path.join(logDir(jobs), 'submitter.lock');
  const lock = FileLock.tryAcquire(file);
  if (lock) return lock;
  const holder = FileLock.holder(file);
  throw new UserError(
    `another \`salgrid run\`${holder ? ` (pid ${holder.pid} on ${holder.host})` : ''} is submitting the Slurm jobs of sweep ${jobs.sweep}; let it finish or stop it (its jobs stay for the next run), then run again.`,
  );
}

export interface SlurmLanes extends Lanes {
  slurm: SlurmLane;
  watcher: JobWatcher;
}

/**
 * Lanes of a Slurm run: `localStages` in the local worker pools, the rest
 * as jobs. Before anything runs, sbatch checks the options and the jobs an
 * earlier run left are found again; both only when some task goes to Slurm,
 * so a sweep with only local work left needs no cluster.
 */
export async function slurmLanes(options: SlurmLanesOptions): Promise<SlurmLanes> {
  const { config, local, progress } = options;
  const client = options.client ?? new SlurmClient();
  const isLocal = (task: Task) => config.localStages.includes(task.stage);
  const remote = options.toRun.filter((t) => !isLocal(t));
  let attached = new Map<string, { job: string; state: string }>();
  let lock: FileLock | undefined;
  if (remote.length > 0) {
    await preflight(client, config, remote.map((t) => t.pool), options.where);
    lock = submitterLock(options.jobs);
    try {
      attached = await reattach(client, options.events, options.jobs, options.plan.tasks);
    } catch (error) {
      lock.release();
      throw error;
    }
  }
  let slurm: SlurmLane | undefined = undefined;
  // Warnings hang under a task whose job is watched, so the live display shows them in its stage.
  const warn = (message: string) => progress.warn([...(slurm?.liveJobs().values() ?? [])][0]?.key ?? 'slurm', message);
  const watcher = new JobWatcher(client, config.pollSeconds * 1000, warn);
  slurm = new SlurmLane({ ...options, client, watcher, attached, onClose: () => lock?.release() });
  const lane = slurm;
  return {
    slurm: lane,
    watcher,
    of: (task) => (isLocal(task) ? local[task.pool] : lane),
    all: () => [local.gpu, local.cpu, lane],
  };
}
