import type { Task } from '../plan/planner.ts';
import type { BackendName } from '../tensor/backend-names.ts';
import type { TaskOutcome } from './run-task.ts';

/** What a worker process needs to run any task of a sweep. */
export interface WorkerSetup {
  /** Plugin modules to load, built-ins first (URLs or paths). */
  pluginModules: string[];
  manifestDir: string;
  cacheRoot: string;
  eventsFile: string;
  runPid: number;
  /** Tensor workers start this backend before their first task, the onnx engine with `threads` intra-op threads. */
  backend?: { name: BackendName; allowSoftwareAdapter: boolean; threads: number };
}

export type ToWorker =
  | { type: 'init'; setup: WorkerSetup }
  | { type: 'task'; task: Task; attempt: number }
  | { type: 'abort' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'init-failed'; message: string; userError: boolean }
  | { type: 'progress'; key: string; done: number; total: number; note?: string }
  | { type: 'warn'; key: string; message: string }
  | { type: 'done'; key: string; outcome: TaskOutcome }
  | { type: 'error'; key: string; message: string; userError: boolean; stack?: string };
