import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';

export type EventType =
  | 'sweep-start'
  | 'sweep-end'
  | 'start'
  | 'publish'
  | 'cached'
  | 'fail'
  | 'skip'
  | 'retry'
  | 'progress'
  | 'warn'
  | 'interrupt'
  /** A task's Slurm job: submitted (`job`, `name`, `log`; `recovered` when a restarted run found it unrecorded), watched again by a restarted run, ended (`state`). */
  | 'slurm-submit'
  | 'slurm-attach'
  | 'slurm-end';

export interface RunEvent {
  time: string;
  type: EventType;
  key?: string;
  stage?: string;
  /** The process that wrote the event. */
  pid: number;
  /** The orchestrating `salgrid run` process. */
  run?: number;
  attempt?: number;
  ms?: number;
  message?: string;
  [extra: string]: unknown;
}

/**
 * The sweep's append-only record, one JSON object per line. Each event is
 * one write with O_APPEND, so processes sharing the file never interleave
 * lines; a line cut short by a kill is repaired before the next append and
 * skipped when read.
 */
export class EventLog {
  private repaired = false;
  constructor(readonly file: string) {}

  append(event: Omit<RunEvent, 'time' | 'pid'> & { pid?: number }): void {
    if (!this.repaired) this.repairTail();
    const record = { time: new Date().toISOString(), pid: process.pid, ...event };
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }

  private repairTail(): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    this.repaired = true;
    if (!existsSync(this.file)) return;
    const fd = openSync(this.file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size === 0) return;
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) appendFileSync(this.file, '\n');
    } finally {
      closeSync(fd);
    }
  }

  read(): RunEvent[] {
    return EventLog.read(this.file);
  }

  static read(file: string): RunEvent[] {
    if (!existsSync(file)) return [];
    const events: RunEvent[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        events.push(JSON.parse(line) as RunEvent);
      } catch {
        // A line cut short by a kill: it recorded nothing that finished.
      }
    }
    return events;
  }
}
