import type { Task } from '../../plan/planner.ts';
import type { EventLog } from '../../store/events.ts';
import type { SlurmClient } from './client.ts';
import { jobName, logFile, type SweepJobs } from './submission.ts';
import { findSweepJobs } from './sweep-jobs.ts';

/**
 * What a (re)started run finds of the jobs earlier runs of the sweep left:
 * those still queued or running, by task key, to be watched instead of
 * submitted again. Jobs that ended while nobody watched get their end
 * recorded; their tasks are judged by the artifact (the plan already
 * counts a published one as cached). One squeue call.
 */
export async function reattach(client: SlurmClient, events: EventLog, jobs: SweepJobs, tasks: Task[]): Promise<Map<string, { job: string; state: string }>> {
  const byKey = new Map(tasks.map((t) => [t.key, t]));
  const attached = new Map<string, { job: string; state: string }>();
  for (const found of await findSweepJobs(client, events.read(), jobs)) {
    const task = found.key ? byKey.get(found.key) : tasks.find((t) => t.stage === found.stage && t.key.startsWith(found.keyPrefix));
    // A job of another plan of this sweep (the manifest changed since): not ours to watch; `salgrid cancel` still finds it.
    if (!task) continue;
    const ids = { key: task.key, stage: task.stage, run: process.pid, job: found.job };
    if (!found.recorded) {
      events.append({ type: 'slurm-submit', ...ids, name: jobName(jobs.sweep, task), log: logFile(jobs, task.key), recovered: true, message: 'found in squeue: its run was killed before it recorded the submission' });
    }
    if (found.live) attached.set(task.key, { job: found.job, state: found.state! });
    else if (!found.end) events.append({ type: 'slurm-end', ...ids, state: found.state ?? 'UNKNOWN', message: 'ended while no salgrid run watched it' });
  }
  return attached;
}
