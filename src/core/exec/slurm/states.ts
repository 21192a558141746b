/** Where a job is in its life, as far as the sweep cares. */
export type JobPhase = 'queued' | 'running' | 'completed' | 'failed';

const QUEUED = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESV_DEL_HOLD', 'POWER_UP_NODE']);
/** Ended without success: what that means for the task, what to do about it, and whether trying again can help. */
const FAILURES: Record<string, { what: string; hint?: string; retry: boolean }> = {
  FAILED: { what: 'failed', retry: true },
  TIMEOUT: { what: 'ran out of time', hint: 'raise execution.slurm.time; a retry resumes from the checkpoint', retry: true },
  OUT_OF_MEMORY: { what: 'ran out of memory', hint: 'raise execution.slurm.mem', retry: true },
  NODE_FAIL: { what: 'lost its node', retry: true },
  BOOT_FAIL: { what: 'could not boot its node', retry: true },
  PREEMPTED: { what: 'was preempted', retry: true },
  // Someone cancelled it (`salgrid cancel`, scancel, an admin): running it again would undo their decision.
  CANCELLED: { what: 'was cancelled', retry: false },
  DEADLINE: { what: 'missed its deadline', retry: false },
  REVOKED: { what: 'was revoked by a sibling cluster', retry: true },
  SPECIAL_EXIT: { what: 'ended with a special exit', retry: true },
};

export function jobPhase(state: string): JobPhase {
  if (state === 'COMPLETED') return 'completed';
  if (state in FAILURES) return 'failed';
  if (QUEUED.has(state)) return 'queued';
  // RUNNING, COMPLETING, SUSPENDED, STOPPED, SIGNALING, STAGE_OUT, RESIZING, and states newer Slurm versions add: still alive.
  return 'running';
}

export function isLive(state: string): boolean {
  const phase = jobPhase(state);
  return phase === 'queued' || phase === 'running';
}

/** What a failed job's state means, in words, and whether a retry may succeed. */
export function failureOf(state: string): { what: string; hint?: string; retry: boolean } {
  return FAILURES[state] ?? { what: `ended in state ${state}`, retry: true };
}
