import os from 'node:os';
import type { RunEvent } from '../../store/events.ts';
import type { SlurmClient } from './client.ts';
import { recordedJobs } from './journal.ts';
import { isLive } from './states.ts';
import { jobComment, type SweepJobs } from './submission.ts';

/** One of the sweep's jobs, with what Slurm says of it now. */
export interface SweepJob {
  job: string;
  /** The task's full key where the events record it; else only its first 10 characters (from the job name) are known. */
  key?: string;
  keyPrefix: string;
  stage: string;
  /** Slurm's state now; undefined once squeue no longer lists the job. */
  state?: string;
  reason?: string;
  /** Whether events.jsonl has its submission (a run killed right after sbatch may not have written it). */
  recorded: boolean;
  /** The end a run recorded, if any. */
  end?: { state: string; message?: string };
  live: boolean;
}

/**
 * The sweep's jobs that squeue still lists or that events.jsonl records
 * without an end, from ONE squeue call: the user's jobs, ours told apart by
 * their comment (the sweep folder), which also finds a job whose
 * submission a killed run had no time to record.
 */
export async function findSweepJobs(client: SlurmClient, events: RunEvent[], jobs: SweepJobs, user = os.userInfo().username): Promise<SweepJob[]> {
  const listed = new Map((await client.listUser(user)).filter((j) => j.comment === jobComment(jobs) && j.name?.startsWith(`salgrid:${jobs.sweep}:`)).map((j) => [j.id, j]));
  const found = new Map<string, SweepJob>();
  for (const recorded of recordedJobs(events)) {
    const now = listed.get(recorded.job);
    if (!now && recorded.end) continue;
    found.set(recorded.job, { job: recorded.job, key: recorded.key, keyPrefix: recorded.key.slice(0, 10), stage: recorded.stage, state: now?.state, reason: now?.reason, recorded: true, end: recorded.end, live: !recorded.end && now !== undefined && isLive(now.state) });
  }
  for (const [id, now] of listed) {
    if (found.has(id)) continue;
    const [, , stage = '', keyPrefix = ''] = now.name!.split(':');
    found.set(id, { job: id, keyPrefix, stage, state: now.state, reason: now.reason, recorded: false, live: isLive(now.state) });
  }
  return [...found.values()].sort((a, b) => Number(a.job) - Number(b.job));
}
