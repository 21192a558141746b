import type { Command } from 'commander';
import { SlurmClient } from '../core/exec/slurm/client.ts';
import { findSweepJobs } from '../core/exec/slurm/sweep-jobs.ts';
import { EventLog } from '../core/store/events.ts';
import { openSweep } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print } from './output.ts';

export function registerCancel(program: Command): void {
  program
    .command('cancel <manifest>')
    .description("cancel the sweep's Slurm jobs that are still queued or running (scancel); finished work stays in the cache")
    .action(async (manifestFile: string, _options: unknown, command: Command) => {
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const events = new EventLog(sweep.paths.events);
      const client = new SlurmClient();
      const live = (await findSweepJobs(client, events.read(), { sweep: sweep.manifest.name, sweepDir: sweep.paths.dir })).filter((j) => j.live);
      if (live.length === 0) return print(`no Slurm job of sweep ${sweep.manifest.name} is queued or running.`);
      await client.cancel(live.map((j) => j.job));
      for (const job of live) {
        events.append({ type: 'slurm-end', key: job.key, stage: job.stage, job: job.job, state: 'CANCELLED', message: `cancelled by \`salgrid cancel\`${job.key ? '' : ` (task ${job.keyPrefix})`}` });
      }
      print(`cancelled ${live.length} job(s): ${live.map((j) => j.job).join(', ')}. \`salgrid run ${manifestFile}\` submits their tasks again.`);
    });
}
