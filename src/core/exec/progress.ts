import type { Task } from '../plan/planner.ts';
import { STAGES, type Stage } from '../plan/stages.ts';
import type { RunSummary } from './executor.ts';
import type { TaskStatus } from './run-task.ts';

/** Where the executor reports what happens. */
export interface ProgressSink {
  begin(tasks: Task[]): void;
  /** Handed to a scheduler (Slurm) and waiting in its queue; `note` names the job. */
  taskQueued(task: Task, note?: string): void;
  taskStarted(task: Task, note?: string): void;
  taskWaiting(task: Task): void;
  taskProgress(key: string, done: number, total: number, note?: string): void;
  taskFinished(task: Task, status: TaskStatus, ms?: number): void;
  taskRetry(task: Task, message: string): void;
  taskFailed(task: Task, message: string): void;
  taskSkipped(task: Task): void;
  warn(key: string, message: string): void;
  output(line: string): void;
  end(summary: RunSummary): Promise<void> | void;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(seconds % 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

/** Counts per stage, with an ETA from the mean time of the tasks finished so far. */
export class StageTally {
  readonly total = new Map<Stage, number>();
  readonly settled = new Map<Stage, number>();
  readonly failed = new Map<Stage, number>();
  readonly durations = new Map<Stage, number[]>();
  readonly running = new Map<string, Task>();
  /** Tasks waiting in a scheduler's queue (Slurm): only a remote run has any. */
  readonly queued = new Map<string, Task>();
  readonly byKey = new Map<string, Task>();
  /** Set once a task was queued: the stage lines then count queued and running tasks. */
  remote = false;

  constructor(private readonly concurrency: (stage: Stage) => number) {}

  begin(tasks: Task[]): void {
    for (const task of tasks) {
      this.byKey.set(task.key, task);
      this.total.set(task.stage, (this.total.get(task.stage) ?? 0) + 1);
      if (task.cached) this.bump(this.settled, task.stage);
    }
  }

  bump(map: Map<Stage, number>, stage: Stage): void {
    map.set(stage, (map.get(stage) ?? 0) + 1);
  }

  /** No longer queued or running (finished, failed, waiting, retried). */
  leave(task: Task): void {
    this.running.delete(task.key);
    this.queued.delete(task.key);
  }

  finished(task: Task, ms?: number): void {
    this.leave(task);
    this.bump(this.settled, task.stage);
    if (ms !== undefined) this.durations.set(task.stage, [...(this.durations.get(task.stage) ?? []), ms]);
  }

  line(stage: Stage): string {
    const total = this.total.get(stage) ?? 0;
    const settled = this.settled.get(stage) ?? 0;
    const failed = this.failed.get(stage) ?? 0;
    const times = this.durations.get(stage) ?? [];
    let eta = '';
    if (times.length > 0 && settled < total) {
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      eta = `  ETA ${formatDuration((mean * (total - settled)) / Math.max(1, this.concurrency(stage)))}`;
    }
    let remote = '';
    if (this.remote) {
      const count = (tasks: Map<string, Task>) => [...tasks.values()].filter((t) => t.stage === stage).length;
      const [queued, running] = [count(this.queued), count(this.running)];
      if (queued + running > 0) remote = `  ${queued} queued, ${running} running`;
    }
    return `${stage.padEnd(9)} ${String(settled).padStart(String(total).length)}/${total}${failed ? `  ${failed} failed` : ''}${remote}${eta}`;
  }

  stages(): Stage[] {
    return STAGES.filter((s) => (this.total.get(s) ?? 0) > 0);
  }
}

/** Plain lines, for logs, pipes and CI. */
export class PlainProgress implements ProgressSink {
  private readonly tally: StageTally;
  private readonly lastProgress = new Map<string, number>();

  constructor(
    concurrency: (stage: Stage) => number,
    private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  ) {
    this.tally = new StageTally(concurrency);
  }

  begin(tasks: Task[]): void {
    this.tally.begin(tasks);
  }
  taskQueued(task: Task, note?: string): void {
    this.tally.remote = true;
    this.tally.running.delete(task.key);
    this.tally.queued.set(task.key, task);
    this.write(`${this.tally.line(task.stage)}  queued: ${task.label}${note ? ` (${note})` : ''}`);
  }
  taskStarted(task: Task): void {
    this.tally.queued.delete(task.key);
    this.tally.running.set(task.key, task);
  }
  taskWaiting(task: Task): void {
    this.tally.leave(task);
  }
  taskProgress(key: string, done: number, total: number, note?: string): void {
    const now = Date.now();
    if (done < total && now - (this.lastProgress.get(key) ?? 0) < 5000) return;
    this.lastProgress.set(key, now);
    const task = this.tally.byKey.get(key);
    this.write(`  ${task?.label ?? key}: ${done}/${total}${note ? ` ${note}` : ''}`);
  }
  taskFinished(task: Task, status: TaskStatus, ms?: number): void {
    this.tally.finished(task, status === 'published' ? ms : undefined);
    this.write(`${this.tally.line(task.stage)}  ${status === 'cached' ? 'cached' : 'done'}: ${task.label}${ms !== undefined ? ` (${formatDuration(ms)})` : ''}`);
  }
  taskRetry(task: Task, message: string): void {
    this.tally.leave(task);
    this.write(`  retrying ${task.label}: ${message}`);
  }
  taskFailed(task: Task, message: string): void {
    this.tally.leave(task);
    this.tally.bump(this.tally.failed, task.stage);
    this.tally.bump(this.tally.settled, task.stage);
    this.write(`${this.tally.line(task.stage)}  FAILED: ${task.label}: ${message}`);
  }
  taskSkipped(task: Task): void {
    this.tally.bump(this.tally.settled, task.stage);
  }
  warn(key: string, message: string): void {
    this.write(`  warning (${this.tally.byKey.get(key)?.label ?? key}): ${message}`);
  }
  output(line: string): void {
    this.write(`  | ${line}`);
  }
  end(): void {}
}
