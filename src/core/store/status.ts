import type { Task } from '../plan/planner.ts';
import { STAGES, type Stage } from '../plan/stages.ts';
import type { RunEvent } from './events.ts';
import { isProcessAlive } from './lock.ts';

export type TaskState = 'done' | 'running' | 'failed' | 'skipped' | 'pending';

export interface StageStatus {
  stage: Stage;
  total: number;
  done: number;
  running: number;
  failed: number;
  skipped: number;
  pending: number;
}

export interface SweepStatus {
  stages: StageStatus[];
  tasks: { key: string; stage: Stage; label: string; state: TaskState; message?: string; pid?: number }[];
}

/**
 * A sweep's state from its records alone — the recorded plan and the event
 * log since it was made — without looking at any artifact. `jobs`: the
 * sweep's Slurm jobs squeue lists as queued or running, by task key (their
 * processes live on other machines, so pids say nothing of them).
 */
export function sweepStatus(tasks: Task[], planCreated: string, events: RunEvent[], jobs: Map<string, { job: string; state: string }> = new Map()): SweepStatus {
  const state = new Map<string, { state: TaskState; message?: string; pid?: number }>();
  for (const task of tasks) state.set(task.key, { state: task.cached ? 'done' : 'pending' });
  for (const event of events) {
    if (!event.key || event.time < planCreated) continue;
    const current = state.get(event.key);
    if (!current) continue;
    switch (event.type) {
      case 'publish':
      case 'cached':
        state.set(event.key, { state: 'done' });
        break;
      case 'start':
        if (current.state !== 'done') state.set(event.key, { state: 'running', pid: event.pid });
        break;
      case 'fail':
        state.set(event.key, { state: 'failed', message: event.message });
        break;
      case 'skip':
        state.set(event.key, { state: 'skipped', message: event.message });
        break;
      case 'retry':
        state.set(event.key, { state: 'pending', message: event.message });
        break;
      default:
        break;
    }
  }
  // A task whose process is gone was interrupted: it is pending again.
  for (const [key, value] of state) if (value.state === 'running' && !(value.pid && isProcessAlive(value.pid))) state.set(key, { state: 'pending', message: 'interrupted' });
  for (const [key, { job, state: jobState }] of jobs) {
    const current = state.get(key);
    if (current && current.state !== 'done') state.set(key, { state: jobState === 'RUNNING' ? 'running' : 'pending', message: `job ${job} ${jobState}` });
  }
  const rows = tasks.map((task) => ({ key: task.key, stage: task.stage, label: task.label, ...state.get(task.key)! }));
  const stages = STAGES.map((stage) => {
    const of = rows.filter((r) => r.stage === stage);
    const count = (s: TaskState) => of.filter((r) => r.state === s).length;
    return { stage, total: of.length, done: count('done'), running: count('running'), failed: count('failed'), skipped: count('skipped'), pending: count('pending') };
  });
  return { stages, tasks: rows };
}
