import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { errorMessage, isUserError } from '../../errors.ts';
import { shownPath } from '../../shown-path.ts';
import type { Task } from '../../plan/planner.ts';
import type { EventLog } from '../../store/events.ts';
import type { Store } from '../../store/store.ts';
import { TaskInterrupted, type TaskLane } from '../lane.ts';
import type { ProgressSink } from '../progress.ts';
import type { TaskOutcome } from '../run-task.ts';
import { TaskError } from '../worker-pool.ts';
import { SlurmUnavailable, SubmissionRejected, type SlurmClient } from './client.ts';
import type { SlurmConfig, SlurmOption } from './config.ts';
import { logTail, salgridFailure } from './job-log.ts';
import { rejectionMessage } from './rejection.ts';
import { failureOf } from './states.ts';
import { jobName, jobOptions, jobScript, logDir, logFile, type SweepJobs } from './submission.ts';
import type { JobEnd, JobWatcher } from './watcher.ts';

/** sbatch calls at once: enough to keep up with a scheduler, few enough not to flood its controller. */
const SUBMIT_CONCURRENCY = 4;
/** Tries of a submission the controller did not answer, 1 s apart, doubling. */
const SUBMIT_TRIES = 5;

export interface SlurmLaneOptions {
  client: SlurmClient;
  watcher: JobWatcher;
  config: SlurmConfig;
  jobs: SweepJobs;
  store: Store;
  events: EventLog;
  progress: ProgressSink;
  /** What a task's job runs: `node …/bin/salgrid.js --runs <dir> task run <key> --backend <name>`. */
  command(task: Task): string[];
  /** Jobs of an earlier run still queued or running, by task key: watched again instead of submitted again. */
  attached: Map<string, { job: string; state: string }>;
  /** Where an option sits in the manifest (file:line:col), for the sentence of a refused submission. */
  where(option: SlurmOption): string;
  /** How long a COMPLETED job's artifact may take to appear here: NFS caches directory lookups for up to a minute. */
  publishGraceMs?: number;
  /** The run is over (releases the sweep's submitter lock). */
  onClose?(): void;
}

/**
 * Runs tasks as Slurm jobs: `run` submits a task's job (or finds the one an
 * earlier run left), waits for the watcher to see it end, and judges the
 * outcome by the state and the artifact in the shared cache.
 */
export class SlurmLane implements TaskLane {
  private readonly submissions = new PQueue({ concurrency: SUBMIT_CONCURRENCY });
  private stopped = false;
  /** Jobs submitted or attached and not seen to end, by job id: those a Ctrl-C asks about. */
  private readonly live = new Map<string, Task>();

  constructor(private readonly options: SlurmLaneOptions) {}

  get concurrency(): number {
    return this.options.config.maxJobs;
  }

  async run(task: Task, attempt: number): Promise<TaskOutcome> {
    const { store, events, progress, watcher } = this.options;
    if (store.has(task.stage, task.key)) return { status: 'cached' };
    const attached = this.options.attached.get(task.key);
    let job: string;
    if (attached) {
      this.options.attached.delete(task.key);
      job = attached.job;
      events.append({ type: 'slurm-attach', key: task.key, stage: task.stage, run: process.pid, attempt, job, state: attached.state });
    } else {
      job = await this.submit(task, attempt);
    }
    this.live.set(job, task);
    const since = Date.now();
    const note = `job ${job}`;
    progress.taskQueued(task, note);
    const end = await watcher.watch(job, (phase) => (phase === 'running' ? progress.taskStarted(task, note) : progress.taskQueued(task, note)));
    this.live.delete(job);
    return this.judge(task, end, Date.now() - since);
  }

  private submit(task: Task, attempt: number): Promise<string> {
    const { client, config, jobs, events } = this.options;
    return this.submissions.add(async () => {
      if (this.stopped) throw new TaskInterrupted('stopped before its job was submitted');
      mkdirSync(logDir(jobs), { recursive: true });
      const options = jobOptions(task, config, jobs);
      const script = jobScript(task, this.options.command(task), attempt);
      for (let tries = 1; ; tries++) {
        try {
          const job = await client.submit(options, script);
          events.append({ type: 'slurm-submit', key: task.key, stage: task.stage, run: process.pid, attempt, job, name: jobName(jobs.sweep, task), log: logFile(jobs, task.key) });
          return job;
        } catch (error) {
          if (error instanceof SubmissionRejected) throw new TaskError(rejectionMessage(error.stderr, config, this.options.where), true);
          if (error instanceof SlurmUnavailable && tries < SUBMIT_TRIES && !this.stopped) {
            await sleep(1000 * 2 ** (tries - 1));
            continue;
          }
          throw new TaskError(errorMessage(error), isUserError(error));
        }
      }
    });
  }

  /** A job that ended: done when its artifact is in the cache, else failed with the reason the state and its log give. */
  private async judge(task: Task, end: JobEnd, elapsedMs: number): Promise<TaskOutcome> {
    const { store, events, jobs } = this.options;
    const log = logFile(jobs, task.key);
    const record = (message?: string) => events.append({ type: 'slurm-end', key: task.key, stage: task.stage, run: process.pid, job: end.id, state: end.state, seenBy: end.seenBy, message });
    const grace = end.state === 'COMPLETED' ? (this.options.publishGraceMs ?? 60_000) : 0;
    if ((end.state === 'COMPLETED' || end.seenBy === 'nowhere') && (await this.published(task, grace))) {
      record();
      // The job's whole time, queue included: what the ETA of the tasks still to submit depends on.
      return { status: 'published', ms: elapsedMs };
    }
    const tail = logTail(log);
    const said = salgridFailure(tail);
    const state = end.seenBy === 'nowhere' ? 'left the queue' : end.state;
    const where = `log ${shownPath(log)}`;
    let message: string;
    let userError: boolean;
    if (end.state === 'COMPLETED') {
      message = `job ${end.id} completed, yet its artifact is not in the cache this machine sees (${store.dir(task.stage, task.key)}): put runs/ (--runs) on a filesystem shared by this machine and the compute nodes; ${where}`;
      userError = true;
    } else if (said && (end.state === 'FAILED' || end.seenBy === 'nowhere')) {
      // The job's own sentence explains it; after a kill by Slurm (time, memory, node) the state says more.
      message = `${said.message.replace(/[.;]$/, '')} (job ${end.id} ${state}, ${where})`;
      userError = said.userError;
    } else if (end.seenBy === 'nowhere') {
      message = `job ${end.id} left the queue without publishing its artifact, and the cluster keeps no accounting to say why; ${where}`;
      userError = false;
    } else {
      const failure = failureOf(end.state);
      const reason = end.reason && !/^(None|NonZeroExitCode)$/.test(end.reason) ? `, ${end.reason}` : '';
      message = `job ${end.id} ${failure.what} (${end.state}${reason})${failure.hint ? `: ${failure.hint}` : ''}; ${where}`;
      userError = !failure.retry;
    }
    record(message);
    throw new TaskError(message, userError, tail.length > 0 ? `last lines of ${log}:\n${tail.join('\n')}` : undefined);
  }

  private async published(task: Task, graceMs: number): Promise<boolean> {
    const until = Date.now() + graceMs;
    for (;;) {
      if (this.options.store.has(task.stage, task.key)) return true;
      if (Date.now() >= until) return false;
      await sleep(250);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** Stops watching: the jobs run on, and the tasks waiting for them are left for a later run. */
  detach(): void {
    this.stopped = true;
    this.options.watcher.detach('left running on the cluster');
  }

  /** Second Ctrl-C: nothing here runs on this machine, so only the watching stops. */
  abort(): void {
    this.detach();
  }

  close(): void {
    this.options.onClose?.();
  }

  /** Jobs of earlier runs this lane will watch instead of submitting their tasks again. */
  attachedJobs(): string[] {
    return [...this.options.attached.values()].map((a) => a.job);
  }

  /** Jobs submitted or found again that were not seen to end, by id. */
  liveJobs(): Map<string, Task> {
    return new Map(this.live);
  }

  /** scancel the given jobs and record them as cancelled. */
  async cancel(jobs: Map<string, Task>, why: string): Promise<void> {
    await this.options.client.cancel([...jobs.keys()]);
    for (const [job, task] of jobs) {
      this.options.events.append({ type: 'slurm-end', key: task.key, stage: task.stage, run: process.pid, job, state: 'CANCELLED', message: why });
      this.live.delete(job);
    }
  }
}
