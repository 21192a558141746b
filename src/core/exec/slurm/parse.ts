/** One job as squeue or sacct reports it. */
export interface JobRecord {
  id: string;
  /** Slurm's long state name, e.g. PENDING, RUNNING, COMPLETED, OUT_OF_MEMORY. */
  state: string;
  /** squeue's reason (Resources, NonZeroExitCode, …) or sacct's exit code. */
  reason: string;
  name?: string;
  comment?: string;
}

/** The squeue format of a poll: id, state, reason. */
export const POLL_FORMAT = '%i|%T|%r';
/** The squeue format of a listing of a user's jobs: also name and comment (last: a comment may hold any character). */
export const LISTING_FORMAT = '%i|%T|%r|%j|%k';

/** `sbatch --parsable` prints `<id>` or `<id>;<cluster>`, possibly after warnings. */
export function parseSbatchId(stdout: string): string | undefined {
  const lines = stdout.trim().split('\n');
  const match = /^(\d+)(?:;\S+)?$/.exec(lines.at(-1)!.trim());
  return match?.[1];
}

/** sacct writes `CANCELLED by 1000`; squeue may add `+` to a state with more to come. */
export function normalizeState(text: string): string {
  return text.trim().split(/\s+/)[0].replace(/\+$/, '').toUpperCase();
}

/** Lines of `squeue --noheader --format=<POLL_FORMAT or LISTING_FORMAT>`. */
export function parseSqueue(stdout: string): JobRecord[] {
  const jobs: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const [id, state, reason, name, ...comment] = line.split('|');
    if (!id || state === undefined) continue;
    const record: JobRecord = { id: id.trim(), state: normalizeState(state), reason: (reason ?? '').trim() };
    if (name !== undefined) record.name = name.trim();
    if (comment.length > 0) record.comment = comment.join('|').trim();
    jobs.push(record);
  }
  return jobs;
}

/**
 * Lines of `sacct --noheader --parsable2 --allocations --format=JobIDRaw,State,ExitCode`:
 * one per job; steps (`123.batch`) are left out should --allocations be ignored.
 */
export function parseSacct(stdout: string): JobRecord[] {
  const jobs: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const [id, state, exitCode] = line.split('|');
    if (!id || !/^\d+$/.test(id.trim()) || state === undefined) continue;
    jobs.push({ id: id.trim(), state: normalizeState(state), reason: exitCode ? `exit code ${exitCode.trim()}` : '' });
  }
  return jobs;
}
