import type { RunEvent } from '../../store/events.ts';

/** A job as the sweep's events.jsonl records it. */
export interface RecordedJob {
  job: string;
  key: string;
  stage: string;
  /** When it was submitted (or found again after a run was killed). */
  time: string;
  /** Its final state, once a run saw it end. */
  end?: { state: string; message?: string };
}

/** Every job the events record, in submission order, each with its recorded end. */
export function recordedJobs(events: RunEvent[]): RecordedJob[] {
  const byJob = new Map<string, RecordedJob>();
  for (const event of events) {
    const job = typeof event.job === 'string' ? event.job : undefined;
    if (!job) continue;
    if (event.type === 'slurm-submit' && event.key) byJob.set(job, { job, key: event.key, stage: event.stage ?? '', time: event.time });
    else if (event.type === 'slurm-end') {
      const recorded = byJob.get(job);
      if (recorded) recorded.end = { state: String(event.state ?? 'UNKNOWN'), message: event.message };
    }
  }
  return [...byJob.values()];
}
