import type { Task } from '../plan/planner.ts';
import type { TaskOutcome } from './run-task.ts';

/**
 * Somewhere tasks run: a pool of local worker processes, or a Slurm
 * cluster. The executor keeps the DAG and never has more than
 * `concurrency` of a lane's tasks in `run` at once.
 */
export interface TaskLane {
  readonly concurrency: number;
  /**
   * Runs one task to its end. Throws a TaskError when it failed (retried
   * unless a user error), TaskInterrupted when it was left for a later run.
   */
  run(task: Task, attempt: number): Promise<TaskOutcome>;
  /** First Ctrl-C: start nothing new. */
  stop(): void;
  /** Second Ctrl-C: running tasks stop as soon as they can. */
  abort(): void;
  /** The run is over. */
  close(): void;
}

/** Which lane runs a task. */
export interface Lanes {
  of(task: Task): TaskLane;
  all(): TaskLane[];
}

/** A task stopped or left running elsewhere on the user's word: not a failure; a later run picks it up. */
export class TaskInterrupted extends Error {}
