import type { Plan, Task } from '../plan/planner.ts';
import type { Pool } from '../plan/stages.ts';
import type { EventLog } from '../store/events.ts';
import type { Store } from '../store/store.ts';
import type { TaskLane } from './lane.ts';
import { tensorWorkerEnv } from './tensor-env.js';
import type { WorkerSetup } from './protocol.ts';
import type { ProgressSink } from './progress.ts';
import type { TaskOutcome } from './run-task.ts';
import { WorkerPool, WorkerProcess } from './worker-pool.ts';

/** Tasks on this machine, one per worker process of a pool. */
export class WorkerLane implements TaskLane {
  private abortTimer?: NodeJS.Timeout;

  constructor(
    private readonly pool: WorkerPool,
    private readonly progress: ProgressSink,
  ) {}

  get concurrency(): number {
    return this.pool.size;
  }

  async run(task: Task, attempt: number): Promise<TaskOutcome> {
    const worker = this.pool.acquire();
    this.progress.taskStarted(task);
    try {
      return await worker.run(task, attempt);
    } finally {
      this.pool.release(worker);
    }
  }

  stop(): void {}

  /** Running tasks are told to checkpoint and stop; workers that do not are killed. */
  abort(): void {
    for (const worker of this.pool.all()) worker.abort();
    this.abortTimer ??= setTimeout(() => {
      for (const worker of this.pool.all()) worker.kill();
    }, 10_000);
    this.abortTimer.unref();
  }

  close(): void {
    this.pool.closeAll();
  }
}

export interface WorkerLaneOptions {
  plan: Plan;
  store: Store;
  events: EventLog;
  progress: ProgressSink;
  workers: Record<Pool, number>;
  pluginModules: string[];
  /** GPUs to pin tensor workers to (CUDA_VISIBLE_DEVICES), 0 for none. */
  gpus: number;
  /** The backend tensor workers start; absent when no tensor task runs here. */
  backend?: WorkerSetup['backend'];
}

/** The two local pools: `gpu` for tensor work, `cpu` for the rest. Workers start when a task first needs one. */
export function workerLanes(options: WorkerLaneOptions): Record<Pool, WorkerLane> {
  const { plan, store, events, progress, pluginModules, gpus, workers } = options;
  const lane = (pool: Pool) => {
    const setup: WorkerSetup = {
      pluginModules,
      manifestDir: plan.manifestDir,
      cacheRoot: store.root,
      eventsFile: events.file,
      runPid: process.pid,
      backend: pool === 'gpu' ? options.backend : undefined,
    };
    const workerPool = new WorkerPool(workers[pool], (slot) => {
      const base = pool === 'gpu' ? tensorWorkerEnv(process.env) : process.env;
      const env: NodeJS.ProcessEnv = { ...base, SALGRID_WORKER_POOL: pool, SALGRID_WORKER_SLOT: String(slot) };
      if (pool === 'gpu' && gpus > 0) env.CUDA_VISIBLE_DEVICES = String(slot % gpus);
      return new WorkerProcess(setup, env, {
        progress: (key, done, total, note) => progress.taskProgress(key, done, total, note),
        warn: (key, message) => progress.warn(key, message),
        output: (line) => progress.output(line),
      });
    });
    return new WorkerLane(workerPool, progress);
  };
  return { gpu: lane('gpu'), cpu: lane('cpu') };
}
