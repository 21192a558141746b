import type { Command } from 'commander';
import { planToDot } from '../core/plan/dot.ts';
import { summarize, type Plan } from '../core/plan/planner.ts';
import { explainReruns } from '../core/plan/why.ts';
import { openSweep, planSweep, type Sweep } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print, printJson, textTable } from './output.ts';

/** The labels of the plan's dataset variants, in plan order; none when the dataset is not an axis. */
export function planDatasets(plan: Plan): string[] {
  return [...new Set(plan.tasks.flatMap((t) => (t.cell.dataset === undefined ? [] : [t.cell.dataset])))];
}

/** Per stage: tasks, cached, to run; with several dataset variants, a column of tasks per variant. */
export function planTable(plan: Plan): string {
  const stages = summarize(plan).filter((s) => s.total > 0);
  const datasets = planDatasets(plan);
  const perDataset = (stage: string, dataset: string) => plan.tasks.filter((t) => t.stage === stage && t.cell.dataset === dataset).length || '';
  return textTable(
    ['stage', 'total', 'cached', 'to run', ...datasets],
    stages.map((s) => [s.stage, s.total, s.cached, s.toRun, ...datasets.map((d) => perDataset(s.stage, d))]),
  );
}

export function planHeadline(plan: Plan): string {
  const cached = plan.tasks.filter((t) => t.cached).length;
  const datasets = planDatasets(plan);
  const over = datasets.length > 0 ? `${datasets.length} dataset variants (${datasets.join(', ')}), ` : '';
  return `sweep ${plan.name}: ${over}${plan.tasks.length} tasks, ${cached} cached, ${plan.tasks.length - cached} to run`;
}

export function planJson(sweep: Sweep, plan: Plan, withWhy: boolean) {
  const why = withWhy ? new Map(explainReruns(plan.tasks, sweep.store).map((w) => [w.key, w])) : undefined;
  return {
    name: plan.name,
    manifest: sweep.manifest.data,
    missingData: plan.missingData ?? null,
    stages: summarize(plan),
    tasks: plan.tasks.map((t) => ({
      key: t.key,
      stage: t.stage,
      label: t.label,
      cell: t.cell,
      pool: t.pool,
      plugin: t.plugin ? `${t.plugin.id}@${t.plugin.version}` : null,
      params: t.material.params,
      inputs: t.inputs,
      ...(t.material.files ? { files: t.material.files } : {}),
      cached: t.cached,
      ...(why?.has(t.key) ? { why: why.get(t.key)!.reason } : {}),
    })),
  };
}

export function registerPlan(program: Command): void {
  program
    .command('plan <manifest>')
    .description('show the task DAG a manifest expands to: per stage, how many tasks are cached and how many would run')
    .option('--json', 'print the plan as JSON (stages summary and every task)')
    .option('--dot', 'print the DAG in Graphviz dot')
    .option('--why', 'for each task that must run, say what differs from the nearest cached task')
    .action(async (manifestFile: string, options: { json?: boolean; dot?: boolean; why?: boolean }, command: Command) => {
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const plan = await planSweep(sweep);
      if (options.json) return printJson(planJson(sweep, plan, Boolean(options.why)));
      if (options.dot) return print(planToDot(plan).trimEnd());
      print(planHeadline(plan));
      if (plan.missingData) print(`data missing: ${plan.missingData.replace(/\.$/, '')} — the counts are the grid's; nothing can run until the data is there.`);
      print(planTable(plan));
      if (options.why) {
        const answers = explainReruns(plan.tasks, sweep.store);
        print();
        if (answers.length === 0) print('nothing to run: every task is cached.');
        for (const answer of answers) print(`${answer.label}: ${answer.reason}`);
      }
    });
}
