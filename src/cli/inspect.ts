import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { errorMessage, isUserError } from '../core/errors.ts';
import { SlurmClient, SlurmUnavailable } from '../core/exec/slurm/client.ts';
import { findSweepJobs } from '../core/exec/slurm/sweep-jobs.ts';
import { canonicalJson } from '../core/plan/keys.ts';
import type { Task } from '../core/plan/planner.ts';
import { EventLog, type RunEvent } from '../core/store/events.ts';
import { collectGarbage } from '../core/store/gc.ts';
import { sweepStatus } from '../core/store/status.ts';
import { Store } from '../core/store/store.ts';
import { openSweep, planSweep, readPlanFile, sweepPaths, type Sweep } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print, printJson, textTable } from './output.ts';

export function registerStatus(program: Command): void {
  program
    .command('status <manifest>')
    .description("a sweep's progress per stage (done / running / failed / pending), read from its records")
    .option('--json', 'print as JSON')
    .action(async (manifestFile: string, options: { json?: boolean }, command: Command) => {
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const recorded = readPlanFile(sweep.paths.plan);
      const events = EventLog.read(sweep.paths.events);
      const slurm = await liveSlurmJobs(sweep, recorded.tasks, events);
      const status = sweepStatus(recorded.tasks, recorded.created, events, new Map(slurm.jobs.filter((j) => j.key).map((j) => [j.key!, j])));
      const stale = canonicalJson(recorded.manifest) !== canonicalJson(sweep.manifest.data);
      if (options.json) return printJson({ name: sweep.manifest.name, planCreated: recorded.created, manifestChanged: stale, ...status, slurmJobs: slurm.jobs, ...(slurm.note ? { slurmNote: slurm.note } : {}) });
      print(`sweep ${sweep.manifest.name}, planned ${recorded.created}`);
      if (stale) print('the manifest changed since this plan was recorded: `salgrid plan` shows what the next run would do.');
      const stages = status.stages.filter((s) => s.total > 0);
      print(textTable(['stage', 'total', 'done', 'running', 'failed', 'skipped', 'pending'], stages.map((s) => [s.stage, s.total, s.done, s.running, s.failed, s.skipped, s.pending])));
      const failed = status.tasks.filter((t) => t.state === 'failed');
      for (const task of failed) print(`  failed: ${task.label}: ${task.message ?? ''}`);
      if (slurm.note) print(slurm.note);
      if (slurm.jobs.length > 0) {
        print(`\nSlurm jobs queued or running (\`salgrid cancel ${manifestFile}\` cancels them):`);
        print(textTable(['job', 'state', 'reason', 'task'], slurm.jobs.map((j) => [j.job, j.state, j.reason, j.label]), false));
      }
    });
}

/** The sweep's Slurm jobs squeue lists as queued or running (one squeue call, only for a sweep that ever used Slurm). */
async function liveSlurmJobs(sweep: Sweep, tasks: Task[], events: RunEvent[]): Promise<{ jobs: { job: string; state: string; reason: string; key?: string; stage: string; label: string }[]; note?: string }> {
  if (!events.some((e) => e.type === 'slurm-submit')) return { jobs: [] };
  let found;
  try {
    found = await findSweepJobs(new SlurmClient(), events, { sweep: sweep.manifest.name, sweepDir: sweep.paths.dir });
  } catch (error) {
    if (!isUserError(error) && !(error instanceof SlurmUnavailable)) throw error;
    return { jobs: [], note: `job states unknown: ${errorMessage(error)}` };
  }
  const jobs = found
    .filter((j) => j.live)
    .map((j) => {
      const task = tasks.find((t) => (j.key ? t.key === j.key : t.stage === j.stage && t.key.startsWith(j.keyPrefix)));
      return { job: j.job, state: j.state!, reason: j.reason ?? '', key: task?.key ?? j.key, stage: j.stage, label: task?.label ?? `${j.stage} ${j.keyPrefix}` };
    });
  return { jobs };
}

export function registerGc(program: Command): void {
  program
    .command('gc [manifests...]')
    .description('remove cache entries that none of the given manifests refers to (default: the recorded plans of every sweep); a dry run unless --apply')
    .option('--apply', 'delete them')
    .action(async (manifests: string[], options: { apply?: boolean }, command: Command) => {
      const runs = runsDir(command);
      const keep = new Set<string>();
      if (manifests.length > 0) {
        for (const file of manifests) {
          const sweep = await openSweep(file, { runsDir: runs, builtins: BUILTINS });
          const plan = await planSweep(sweep);
          // Without the data the index key is unknown: keep what the last recorded plan used.
          const tasks = plan.missingData && existsSync(sweep.paths.plan) ? readPlanFile(sweep.paths.plan).tasks : plan.tasks;
          for (const task of tasks) keep.add(task.key);
        }
      } else {
        for (const name of existsSync(runs) ? readdirSync(runs) : []) {
          const file = sweepPaths(runs, name).plan;
          if (existsSync(file)) for (const task of readPlanFile(file).tasks) keep.add(task.key);
        }
      }
      const garbage = collectGarbage(new Store(path.join(runs, 'cache')), keep, Boolean(options.apply));
      const mb = (garbage.bytes / 1024 / 1024).toFixed(1);
      const what = `${garbage.artifacts.length} artifact(s), ${garbage.staging.length} unfinished staging folder(s) and ${garbage.staleLocks.length} stale lock(s), ${mb} MiB`;
      print(options.apply ? `removed ${what}.` : `would remove ${what}; run again with --apply to delete.`);
      for (const a of garbage.artifacts.slice(0, 20)) print(`  ${a.stage}/${a.key.slice(0, 10)}  ${(a.bytes / 1024).toFixed(0)} KiB`);
      if (garbage.artifacts.length > 20) print(`  … and ${garbage.artifacts.length - 20} more`);
    });
}
