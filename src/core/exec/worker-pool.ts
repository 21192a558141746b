import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Task } from '../plan/planner.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './protocol.ts';
import type { TaskOutcome } from './run-task.ts';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.ts', import.meta.url));
const TSX_LOADER = import.meta.resolve('tsx');

/** A task failed inside its worker; `userError` when the user can fix it (no retry). */
export class TaskError extends Error {
  constructor(
    message: string,
    readonly userError: boolean,
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** The worker process died while running a task. */
export class WorkerCrash extends Error {}

export interface WorkerEvents {
  progress(key: string, done: number, total: number, note?: string): void;
  warn(key: string, message: string): void;
  output(line: string): void;
}

/** One long-lived worker process. */
export class WorkerProcess {
  readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  private current?: { key: string; resolve(outcome: TaskOutcome): void; reject(error: Error): void };
  private readonly recentOutput: string[] = [];
  exited = false;

  constructor(setup: WorkerSetup, env: NodeJS.ProcessEnv, events: WorkerEvents) {
    this.child = fork(WORKER_MAIN, [], { execArgv: ['--import', TSX_LOADER], env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          this.recentOutput.push(line);
          if (this.recentOutput.length > 20) this.recentOutput.shift();
          events.output(line);
        }
      });
    }
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: FromWorker) => {
        if (message.type === 'ready') resolve();
        else if (message.type === 'init-failed') reject(new TaskError(message.message, message.userError));
      };
      this.child.on('message', onMessage);
      this.child.once('exit', () => reject(new WorkerCrash(`worker process exited while starting${this.tail()}`)));
    });
    this.ready.catch(() => {});
    this.child.on('message', (message: FromWorker) => {
      if (message.type === 'progress') events.progress(message.key, message.done, message.total, message.note);
      else if (message.type === 'warn') events.warn(message.key, message.message);
      else if ((message.type === 'done' || message.type === 'error') && this.current?.key === message.key) {
        const current = this.current;
        this.current = undefined;
        if (message.type === 'done') current.resolve(message.outcome);
        else current.reject(new TaskError(message.message, message.userError, message.stack));
      }
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      const current = this.current;
      this.current = undefined;
      current?.reject(new WorkerCrash(`worker process ${this.child.pid} died (${signal ?? `exit code ${code}`})${this.tail()}`));
    });
    this.send({ type: 'init', setup });
  }

  private tail(): string {
    const lines = this.recentOutput.filter((l) => l.trim());
    return lines.length ? `; its last output: ${lines.slice(-5).join(' | ')}` : '';
  }

  private send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Set while the pool has handed this worker out. */
  reserved = false;

  async run(task: Task, attempt: number): Promise<TaskOutcome> {
    await this.ready;
    if (this.exited) throw new WorkerCrash(`worker process ${this.child.pid} is gone`);
    return new Promise((resolve, reject) => {
      this.current = { key: task.key, resolve, reject };
      this.send({ type: 'task', task, attempt });
    });
  }

  abort(): void {
    this.send({ type: 'abort' });
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** A fixed number of worker processes for one resource pool; crashed ones are replaced on demand. */
export class WorkerPool {
  private readonly workers: { slot: number; worker: WorkerProcess }[] = [];

  constructor(
    readonly size: number,
    private readonly create: (slot: number) => WorkerProcess,
  ) {}

  /**
   * An idle worker, reserved until `release`. The pool's queue never runs
   * more tasks than `size`, so one is always idle or can be started in a
   * free slot (the slot picks the GPU a worker is pinned to).
   */
  acquire(): WorkerProcess {
    for (let i = this.workers.length - 1; i >= 0; i--) if (this.workers[i].worker.exited) this.workers.splice(i, 1);
    let entry = this.workers.find((w) => !w.worker.reserved);
    if (!entry) {
      const used = new Set(this.workers.map((w) => w.slot));
      let slot = 0;
      while (used.has(slot)) slot++;
      entry = { slot, worker: this.create(slot) };
      this.workers.push(entry);
    }
    entry.worker.reserved = true;
    return entry.worker;
  }

  release(worker: WorkerProcess): void {
    worker.reserved = false;
  }

  all(): WorkerProcess[] {
    return this.workers.map((w) => w.worker).filter((w) => !w.exited);
  }

  closeAll(): void {
    for (const worker of this.all()) worker.close();
  }
}
