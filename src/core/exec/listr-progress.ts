/**
 * The live display of `salgrid run` at a terminal (listr2), in its own file
 * so that only a run at a terminal loads listr2.
 */
import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { Task } from '../plan/planner.ts';
import type { Stage } from '../plan/stages.ts';
import type { RunSummary } from './executor.ts';
import { StageTally, type ProgressSink } from './progress.ts';
import type { TaskStatus } from './run-task.ts';

const MAX_LISTED = 12;

/** A live listr2 display: a line per stage with done/total and ETA, running tasks and failures beneath. */
export class ListrProgress implements ProgressSink {
  private readonly tally: StageTally;
  private readonly wrappers = new Map<Stage, ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>>();
  private readonly resolvers = new Map<Stage, (error?: Error) => void>();
  private readonly notes = new Map<string, string>();
  private readonly failures = new Map<Stage, string[]>();
  private listr?: Promise<unknown>;

  constructor(concurrency: (stage: Stage) => number) {
    this.tally = new StageTally(concurrency);
  }

  begin(tasks: Task[]): void {
    this.tally.begin(tasks);
    const list = new Listr<unknown, 'default', 'simple'>(
      this.tally.stages().map((stage) => ({
        title: this.tally.line(stage),
        task: (_ctx, wrapper) => {
          this.wrappers.set(stage, wrapper);
          return new Promise<void>((resolve, reject) => {
            this.resolvers.set(stage, (error) => (error ? reject(error) : resolve()));
            this.refresh(stage);
          });
        },
      })),
      // Ctrl-C is the executor's to handle (stop, then abort): listr2's own handler would exit(127) at once.
      { concurrent: true, exitOnError: false, registerSignalListeners: false, rendererOptions: { collapseSubtasks: false, collapseErrors: false } },
    );
    this.listr = list.run().catch(() => {});
  }

  private refresh(stage: Stage): void {
    const wrapper = this.wrappers.get(stage);
    if (!wrapper) return;
    wrapper.title = this.tally.line(stage);
    const running = [...this.tally.running.values()].filter((t) => t.stage === stage).map((t) => `${t.label}${this.notes.get(t.key) ? `  ${this.notes.get(t.key)}` : ''}`);
    const queued = [...this.tally.queued.values()].filter((t) => t.stage === stage).map((t) => `${t.label}  queued${this.notes.get(t.key) ? ` (${this.notes.get(t.key)})` : ''}`);
    const failed = (this.failures.get(stage) ?? []).map((f) => `✖ ${f}`);
    // A cluster may run hundreds at once: the counts are in the title, the list stays short.
    const shown = [...running, ...queued];
    const more = shown.length > MAX_LISTED ? [`… and ${shown.length - MAX_LISTED} more`] : [];
    wrapper.output = [...failed.slice(-5), ...shown.slice(0, MAX_LISTED), ...more].join('\n');
    const total = this.tally.total.get(stage) ?? 0;
    if ((this.tally.settled.get(stage) ?? 0) >= total) this.settleStage(stage);
  }

  private settleStage(stage: Stage, interrupted = false): void {
    const resolve = this.resolvers.get(stage);
    if (!resolve) return;
    this.resolvers.delete(stage);
    const failed = this.tally.failed.get(stage) ?? 0;
    resolve(failed > 0 ? new Error(`${this.tally.line(stage)}  (${this.failures.get(stage)?.at(-1) ?? ''})`) : interrupted ? new Error(`${this.tally.line(stage)}  interrupted`) : undefined);
  }

  taskQueued(task: Task, note?: string): void {
    this.tally.remote = true;
    this.tally.running.delete(task.key);
    this.tally.queued.set(task.key, task);
    if (note) this.notes.set(task.key, note);
    this.refresh(task.stage);
  }
  taskStarted(task: Task, note?: string): void {
    this.tally.queued.delete(task.key);
    this.tally.running.set(task.key, task);
    if (note) this.notes.set(task.key, note);
    this.refresh(task.stage);
  }
  taskWaiting(task: Task): void {
    this.tally.leave(task);
    this.refresh(task.stage);
  }
  taskProgress(key: string, done: number, total: number, note?: string): void {
    this.notes.set(key, `${done}/${total}${note ? ` ${note}` : ''}`);
    const task = this.tally.byKey.get(key);
    if (task) this.refresh(task.stage);
  }
  taskFinished(task: Task, status: TaskStatus, ms?: number): void {
    this.tally.finished(task, status === 'published' ? ms : undefined);
    this.refresh(task.stage);
  }
  taskRetry(task: Task, message: string): void {
    this.tally.leave(task);
    this.failures.set(task.stage, [...(this.failures.get(task.stage) ?? []), `retrying ${task.label}: ${message}`]);
    this.refresh(task.stage);
  }
  taskFailed(task: Task, message: string): void {
    this.tally.leave(task);
    this.tally.bump(this.tally.failed, task.stage);
    this.tally.bump(this.tally.settled, task.stage);
    this.failures.set(task.stage, [...(this.failures.get(task.stage) ?? []), `${task.label}: ${message}`]);
    this.refresh(task.stage);
  }
  taskSkipped(task: Task): void {
    this.tally.bump(this.tally.settled, task.stage);
    this.refresh(task.stage);
  }
  warn(key: string, message: string): void {
    const task = this.tally.byKey.get(key);
    if (task) this.failures.set(task.stage, [...(this.failures.get(task.stage) ?? []), `warning: ${message}`]);
  }
  output(): void {}
  async end(summary: RunSummary): Promise<void> {
    for (const stage of this.tally.stages()) this.settleStage(stage, summary.interrupted);
    await this.listr;
  }
}
