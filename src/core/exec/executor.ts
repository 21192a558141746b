import PQueue from 'p-queue';
import type { Plan, Task } from '../plan/planner.ts';
import { STAGE_DEPTH, type Stage } from '../plan/stages.ts';
import type { EventLog } from '../store/events.ts';
import type { Store } from '../store/store.ts';
import { TaskInterrupted, type Lanes, type TaskLane } from './lane.ts';
import type { ProgressSink } from './progress.ts';
import { TaskError } from './worker-pool.ts';

export interface ExecutorOptions {
  plan: Plan;
  store: Store;
  events: EventLog;
  /** Where each task runs: local worker pools (localLanes), or Slurm for some stages. */
  lanes: Lanes;
  retries: number;
  failFast: boolean;
  /** Run only what these stages need, and stop there. */
  only?: Stage[];
  progress: ProgressSink;
  /** How long to wait before looking again at a task another process is running. */
  busyRetryMs?: number;
}

export interface Failure {
  task: Task;
  message: string;
  detail?: string;
}

export interface RunSummary {
  ran: number;
  cached: number;
  failed: number;
  skipped: number;
  /** Tasks left for a later run because the run was stopped. */
  notRun: number;
  interrupted: boolean;
  wallMs: number;
  failures: Failure[];
}

/** The tasks the named stages need: those stages' tasks and everything upstream of them. */
export function selectTasks(tasks: Task[], only?: Stage[]): Task[] {
  if (!only || only.length === 0) return tasks;
  const byKey = new Map(tasks.map((t) => [t.key, t]));
  const wanted = new Set<string>();
  const stack = tasks.filter((t) => only.includes(t.stage)).map((t) => t.key);
  while (stack.length > 0) {
    const key = stack.pop()!;
    if (wanted.has(key)) continue;
    wanted.add(key);
    for (const input of byKey.get(key)?.inputs ?? []) stack.push(input);
  }
  return tasks.filter((t) => wanted.has(t.key));
}

/**
 * One task per key: tasks with the same key are the same work with the same
 * output (the key covers stage, plugin, params and inputs), so it runs once.
 * The executor counts, settles and skips by key, and a key planned twice
 * would otherwise leave the run waiting for a task that never settles.
 */
export function distinctByKey(tasks: Task[]): Task[] {
  const seen = new Set<string>();
  return tasks.filter((task) => !seen.has(task.key) && Boolean(seen.add(task.key)));
}

/**
 * Runs a plan's tasks in bounded lanes (local worker pools, a Slurm
 * cluster). A task starts as soon as its inputs exist, most-downstream
 * first; a failure skips its dependants and the rest goes on (unless
 * fail-fast).
 */
export class Executor {
  private readonly queues = new Map<TaskLane, PQueue>();
  private readonly dependants = new Map<string, Task[]>();
  private readonly waitingOn = new Map<string, number>();
  private readonly attempts = new Map<string, number>();
  private readonly settled = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private summary: RunSummary = { ran: 0, cached: 0, failed: 0, skipped: 0, notRun: 0, interrupted: false, wallMs: 0, failures: [] };
  private remaining = 0;
  private running = 0;
  private stopped = false;
  private aborted = false;
  private finish?: () => void;

  constructor(private readonly options: ExecutorOptions) {
    for (const lane of options.lanes.all()) this.queues.set(lane, new PQueue({ concurrency: lane.concurrency }));
  }

  async run(): Promise<RunSummary> {
    const started = Date.now();
    const tasks = distinctByKey(selectTasks(this.options.plan.tasks, this.options.only));
    const pending = tasks.filter((t) => !t.cached);
    const pendingKeys = new Set(pending.map((t) => t.key));
    for (const task of pending) {
      this.waitingOn.set(task.key, task.inputs.filter((k) => pendingKeys.has(k)).length);
      for (const input of task.inputs) {
        if (!pendingKeys.has(input)) continue;
        const list = this.dependants.get(input) ?? [];
        list.push(task);
        this.dependants.set(input, list);
      }
    }
    this.summary.cached = tasks.length - pending.length;
    this.remaining = pending.length;
    this.options.progress.begin(tasks);
    const finished = new Promise<void>((resolve) => (this.finish = resolve));
    for (const task of pending) if (this.waitingOn.get(task.key) === 0) this.schedule(task);
    this.checkFinished();
    await finished;
    for (const lane of this.options.lanes.all()) lane.close();
    this.summary.notRun = this.remaining;
    this.summary.wallMs = Date.now() - started;
    this.options.progress.end(this.summary);
    return this.summary;
  }

  /** First Ctrl-C: start nothing new; running tasks finish. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.summary.interrupted = true;
    for (const queue of this.queues.values()) queue.clear();
    for (const lane of this.options.lanes.all()) lane.stop();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.options.events.append({ type: 'interrupt', run: process.pid, message: `stopping: ${this.running} running task(s) will finish` });
    this.checkFinished();
  }

  /** Second Ctrl-C: running tasks are told to checkpoint and stop (local workers that do not are killed). */
  abort(): void {
    this.stop();
    this.aborted = true;
    for (const lane of this.options.lanes.all()) lane.abort();
  }

  private schedule(task: Task): void {
    if (this.stopped) return;
    const lane = this.options.lanes.of(task);
    void this.queues.get(lane)!.add(() => this.execute(task, lane), { priority: STAGE_DEPTH[task.stage] });
  }

  private async execute(task: Task, lane: TaskLane): Promise<void> {
    if (this.stopped) return;
    const attempt = (this.attempts.get(task.key) ?? 0) + 1;
    this.attempts.set(task.key, attempt);
    this.running++;
    try {
      const outcome = await lane.run(task, attempt);
      if (outcome.status === 'busy') {
        // Another process runs it: look again later, without counting an attempt.
        this.attempts.set(task.key, attempt - 1);
        this.options.progress.taskWaiting(task);
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.schedule(task);
          this.checkFinished();
        }, this.options.busyRetryMs ?? 500);
        this.timers.add(timer);
        return;
      }
      if (outcome.status === 'cached') {
        this.summary.cached++;
        this.options.events.append({ type: 'cached', key: task.key, stage: task.stage, run: process.pid });
      } else {
        this.summary.ran++;
      }
      this.options.progress.taskFinished(task, outcome.status, outcome.ms);
      this.complete(task);
    } catch (error) {
      const userError = error instanceof TaskError && error.userError;
      const message = error instanceof Error ? error.message : String(error);
      if (this.aborted || error instanceof TaskInterrupted) {
        // Stopped on the user's word (or left running on the cluster): not a failure; the next run picks it up.
        this.options.events.append({ type: 'interrupt', key: task.key, stage: task.stage, run: process.pid, message });
        this.options.progress.taskWaiting(task);
        // This run cannot finish without the task: never wait for it.
        this.stop();
      } else if (!userError && attempt <= this.options.retries && !this.stopped) {
        this.options.events.append({ type: 'retry', key: task.key, stage: task.stage, run: process.pid, attempt, message });
        this.options.progress.taskRetry(task, message);
        this.schedule(task);
      } else {
        this.fail(task, message, error instanceof TaskError ? error.detail : undefined);
      }
    } finally {
      this.running--;
      this.checkFinished();
    }
  }

  private complete(task: Task): void {
    this.settle(task);
    for (const dependant of this.dependants.get(task.key) ?? []) {
      const left = this.waitingOn.get(dependant.key)! - 1;
      this.waitingOn.set(dependant.key, left);
      if (left === 0 && !this.settled.has(dependant.key)) this.schedule(dependant);
    }
  }

  private settle(task: Task): void {
    if (this.settled.has(task.key)) return;
    this.settled.add(task.key);
    this.remaining--;
  }

  private fail(task: Task, message: string, detail?: string): void {
    this.settle(task);
    this.summary.failed++;
    this.summary.failures.push({ task, message, detail });
    this.options.events.append({ type: 'fail', key: task.key, stage: task.stage, run: process.pid, message });
    this.options.progress.taskFailed(task, message);
    const stack = [...(this.dependants.get(task.key) ?? [])];
    while (stack.length > 0) {
      const dependant = stack.pop()!;
      if (this.settled.has(dependant.key)) continue;
      this.settle(dependant);
      this.summary.skipped++;
      this.options.events.append({ type: 'skip', key: dependant.key, stage: dependant.stage, run: process.pid, message: `input ${task.stage} ${task.key.slice(0, 10)} failed` });
      this.options.progress.taskSkipped(dependant);
      stack.push(...(this.dependants.get(dependant.key) ?? []));
    }
    if (this.options.failFast) this.stop();
  }

  private checkFinished(): void {
    if (this.remaining === 0 || (this.stopped && this.running === 0 && this.timers.size === 0)) this.finish?.();
  }
}
