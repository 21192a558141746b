import os from 'node:os';
import type { Task } from '../plan/planner.ts';
import type { Registry } from '../plugins/registry.ts';
import type { EventLog } from '../store/events.ts';
import type { Store } from '../store/store.ts';
import { runStage } from '../stages/run-stage.ts';
import type { BackendRecord } from '../tensor/backend-names.ts';

export interface TaskRunEnv {
  registry: Registry;
  store: Store;
  events: EventLog;
  manifestDir: string;
  /** The orchestrating `salgrid run` process, recorded in events. */
  runPid?: number;
  attempt: number;
  signal: AbortSignal;
  /** The tensor backend this process runs, recorded in the artifact's meta.json. */
  backend?: BackendRecord;
  progress?(done: number, total: number, note?: string): void;
  warn?(message: string): void;
}

export type TaskStatus = 'published' | 'cached' | 'busy';

export interface TaskOutcome {
  status: TaskStatus;
  ms?: number;
}

/**
 * Runs one task under its lock: skips it when its artifact exists, reports
 * `busy` when another process holds the lock, and otherwise runs its stage
 * in the staging folder and publishes the artifact.
 */
export async function executeTask(task: Task, env: TaskRunEnv): Promise<TaskOutcome> {
  const { store, events } = env;
  if (store.has(task.stage, task.key)) return { status: 'cached' };
  const lock = store.tryLock(task.key);
  if (!lock) return { status: 'busy' };
  try {
    // Published by another process between our check and our lock.
    if (store.has(task.stage, task.key)) return { status: 'cached' };
    const started = new Date();
    events.append({ type: 'start', key: task.key, stage: task.stage, run: env.runPid, attempt: env.attempt });
    const out = await store.prepareStaging(task.stage, task.key);
    const extra = await runStage(
      task,
      {
        registry: env.registry,
        store,
        manifestDir: env.manifestDir,
        signal: env.signal,
        progress: env.progress ?? (() => {}),
        warn: (message) => {
          events.append({ type: 'warn', key: task.key, stage: task.stage, run: env.runPid, message });
          env.warn?.(message);
        },
      },
      out,
    );
    const finished = new Date();
    const ms = finished.getTime() - started.getTime();
    const published = await store.publish(task.stage, task.key, {
      key: task.key,
      stage: task.stage,
      material: task.material,
      context: { ...task.cell },
      started: started.toISOString(),
      finished: finished.toISOString(),
      ms,
      host: os.hostname(),
      pid: process.pid,
      ...(task.pool === 'gpu' && env.backend ? { backend: env.backend } : {}),
      ...extra,
    });
    if (!published) return { status: 'cached' };
    events.append({ type: 'publish', key: task.key, stage: task.stage, run: env.runPid, attempt: env.attempt, ms });
    return { status: 'published', ms };
  } finally {
    lock.release();
  }
}
