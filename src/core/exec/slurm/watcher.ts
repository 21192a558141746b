import { errorMessage, isUserError } from '../../errors.ts';
import { TaskInterrupted } from '../lane.ts';
import type { SlurmClient } from './client.ts';
import type { JobRecord } from './parse.ts';
import { jobPhase } from './states.ts';

/** How a watched job ended, and who said so. */
export interface JobEnd {
  id: string;
  state: string;
  reason: string;
  /** `nowhere`: it left squeue and there is no accounting to ask (or it does not know the job either). */
  seenBy: 'squeue' | 'sacct' | 'nowhere';
}

interface Watch {
  phase?: 'queued' | 'running';
  /** Polls in a row that found the job nowhere. */
  missing: number;
  onPhase(phase: 'queued' | 'running', record: JobRecord): void;
  resolve(end: JobEnd): void;
  reject(error: Error): void;
}

/** Errors in a row before the watcher says so; a controller restart often takes one or two polls. */
const QUIET_FAILURES = 2;
const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * Watches every job of a run with ONE squeue call per poll, whatever their
 * number; jobs squeue no longer lists are looked up in sacct (where the
 * cluster keeps accounting). Failing calls back off exponentially.
 */
export class JobWatcher {
  private readonly watches = new Map<string, Watch>();
  private timer?: NodeJS.Timeout;
  private polling = false;
  private failures = 0;
  /** Learned on first use: false once sacct says the cluster keeps no accounting. */
  private accounting = true;
  /** Calls made, for the benchmark and the tests' claim of one squeue per poll. */
  readonly calls = { squeue: 0, sacct: 0 };

  constructor(
    private readonly client: SlurmClient,
    private readonly pollMs: number,
    private readonly warn: (message: string) => void,
  ) {}

  /** Resolves when the job has ended; `onPhase` hears when it starts running (or is queued again): a new job counts as queued. */
  watch(id: string, onPhase: Watch['onPhase'] = () => {}): Promise<JobEnd> {
    return new Promise((resolve, reject) => {
      this.watches.set(id, { phase: 'queued', missing: 0, onPhase, resolve, reject });
      this.schedule(this.pollMs);
    });
  }

  get watching(): string[] {
    return [...this.watches.keys()];
  }

  /** Stops watching: every waiting task is left to its job, for a later run to find again. */
  detach(reason: string): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const watches = [...this.watches.values()];
    this.watches.clear();
    for (const watch of watches) watch.reject(new TaskInterrupted(reason));
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.polling || this.watches.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, delayMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let next = this.pollMs;
    try {
      await this.pollOnce();
      this.failures = 0;
    } catch (error) {
      if (isUserError(error)) {
        // squeue itself is gone from PATH: nothing to wait for; the tasks fail with the sentence that says why.
        for (const watch of this.watches.values()) watch.reject(error as Error);
        this.watches.clear();
        return;
      }
      this.failures++;
      next = Math.min(this.pollMs * 2 ** this.failures, Math.max(MAX_BACKOFF_MS, this.pollMs));
      if (this.failures >= QUIET_FAILURES) this.warn(`${errorMessage(error)}; asking again in ${Math.round(next / 1000)} s (jobs keep running meanwhile)`);
    } finally {
      this.polling = false;
      this.schedule(next);
    }
  }

  private async pollOnce(): Promise<void> {
    const ids = [...this.watches.keys()];
    this.calls.squeue++;
    const listed = await this.client.queue(ids);
    const missing: string[] = [];
    for (const id of ids) {
      const record = listed.get(id);
      if (record) this.update(id, record, 'squeue');
      else missing.push(id);
    }
    if (missing.length === 0) return;
    let accounted: Map<string, JobRecord> | undefined;
    if (this.accounting) {
      this.calls.sacct++;
      try {
        accounted = await this.client.accounting(missing);
      } catch (error) {
        if (!isUserError(error)) throw error;
      }
      // No accounting (or no sacct): from now on a job that left squeue is judged by its artifact alone.
      if (!accounted) this.accounting = false;
    }
    for (const id of missing) {
      const record = accounted?.get(id);
      if (record) {
        this.update(id, record, 'sacct');
        continue;
      }
      const watch = this.watches.get(id);
      // Once is not enough: a job can be between squeue's view and sacct's for a moment.
      if (watch && ++watch.missing >= 2) this.settle(id, { id, state: 'UNKNOWN', reason: '', seenBy: 'nowhere' });
    }
  }

  private update(id: string, record: JobRecord, seenBy: JobEnd['seenBy']): void {
    const watch = this.watches.get(id);
    if (!watch) return;
    watch.missing = 0;
    const phase = jobPhase(record.state);
    if (phase === 'completed' || phase === 'failed') return this.settle(id, { id, state: record.state, reason: record.reason, seenBy });
    if (phase !== watch.phase) {
      watch.phase = phase;
      watch.onPhase(phase, record);
    }
  }

  private settle(id: string, end: JobEnd): void {
    const watch = this.watches.get(id);
    this.watches.delete(id);
    watch?.resolve(end);
  }
}
