import { mkdirSync, rmSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { EventLog } from '../core/store/events.ts';
import { openSweep, planSweep, publishResults } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print } from './output.ts';
import { missingWork } from './results.ts';

export function registerReport(program: Command): void {
  program
    .command('report <manifest>')
    .description('build the report from the sweep’s results, computing nothing else (charts, verdicts, gallery, report.html)')
    .option('--force', 'rebuild it even when the cached report is current')
    .action(async (manifestFile: string, options: { force?: boolean }, command: Command) => {
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const plan = await planSweep(sweep);
      if (plan.missingData) throw new UserError(plan.missingData);
      const report = plan.tasks.find((t) => t.stage === 'report')!;
      const missing = plan.tasks.filter((t) => report.inputs.includes(t.key) && !t.cached);
      if (missing.length > 0) throw new UserError(`the report needs results that are not computed yet (still to run: ${missingWork(plan)} tasks); run \`salgrid run ${manifestFile}\`.`);
      if (report.cached && options.force) {
        const lock = sweep.store.tryLock(report.key);
        if (!lock) throw new UserError(`another salgrid process is building this report; try again when it is done.`);
        try {
          rmSync(sweep.store.dir('report', report.key), { recursive: true, force: true });
        } finally {
          lock.release();
        }
        report.cached = false;
      }
      if (report.cached) {
        print('report is current: nothing to rebuild (--force rebuilds it anyway).');
      } else {
        mkdirSync(sweep.paths.dir, { recursive: true });
        const { executeTask } = await import('../core/exec/run-task.ts');
        const outcome = await executeTask(report, {
          registry: sweep.registry,
          store: sweep.store,
          events: new EventLog(sweep.paths.events),
          manifestDir: sweep.manifest.dir,
          attempt: 1,
          signal: new AbortController().signal,
          warn: (message) => print(`warning: ${message}`),
        });
        if (outcome.status === 'busy') throw new UserError('another salgrid process is building this report; try again when it is done.');
        print(outcome.status === 'published' ? `report built in ${((outcome.ms ?? 0) / 1000).toFixed(1)} s.` : 'report is current: another process built it.');
      }
      const shown = publishResults(plan, sweep.store, sweep.paths);
      print(`report:  ${shown.report}`);
    });
}
