import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { Plan } from '../core/plan/planner.ts';
import type { Stage } from '../core/plan/stages.ts';
import type { ResultRow } from '../core/plugins/types.ts';
import { PERCENT_COLUMNS, PERCENT_TABLES, markdownTable } from '../core/report/format.ts';
import type { Store } from '../core/store/store.ts';
import { openSweep, planSweep } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print } from './output.ts';

/** What `salgrid results` prints when no table is named. */
export const DEFAULT_RESULTS = ['classification-summary', 'decision', 'summary-over-folds'];

const FORMATS = ['md', 'csv', 'json'] as const;
type Format = (typeof FORMATS)[number];

/** Table files of a folder, by name. */
function tableFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  if (!existsSync(dir)) return files;
  for (const file of readdirSync(dir).sort()) if (file.endsWith('.json') && file !== 'meta.json') files.set(file.slice(0, -'.json'.length), path.join(dir, file));
  return files;
}

/** The tasks the results still wait for, by stage (the report aside): "3 score, 1 aggregate". */
export function missingWork(plan: Plan): string {
  const counts = new Map<Stage, number>();
  for (const task of plan.tasks) if (!task.cached && task.stage !== 'report') counts.set(task.stage, (counts.get(task.stage) ?? 0) + 1);
  return [...counts].map(([stage, n]) => `${n} ${stage}`).join(', ');
}

/** The result tables of a sweep's current plan: the aggregate's, plus the report's verdicts when the report is built. */
export function resultTables(plan: Plan, store: Store, manifestFile: string): Map<string, string> {
  const aggregate = plan.tasks.find((t) => t.stage === 'aggregate')!;
  if (!aggregate.cached) {
    if (plan.missingData) throw new UserError(`no results: ${plan.missingData}`);
    throw new UserError(`no results for ${plan.name} yet (still to run: ${missingWork(plan)} tasks); run \`salgrid run ${manifestFile}\` first.`);
  }
  const tables = tableFiles(store.dir('aggregate', aggregate.key));
  const report = plan.tasks.find((t) => t.stage === 'report')!;
  if (report.cached) for (const [name, file] of tableFiles(store.dir('report', report.key))) tables.set(name, file);
  return tables;
}

export async function formatTables(tables: [name: string, rows: ResultRow[]][], format: Format): Promise<string> {
  if (format === 'json') return JSON.stringify(Object.fromEntries(tables), null, 1);
  if (format === 'csv') {
    // Loaded here: arquero takes a quarter of a second, which every other command would pay at start.
    const aq = await import('arquero');
    const csv = ([, rows]: [string, ResultRow[]]) => (rows.length > 0 ? aq.toCSV(aq.from(rows)).trimEnd() : '');
    if (tables.length === 1) return csv(tables[0]);
    return tables.map((table) => `# ${table[0]}\n${csv(table)}`).join('\n\n');
  }
  return tables.map(([name, rows]) => `## ${name}\n\n${markdownTable(rows, PERCENT_TABLES.has(name) ? PERCENT_COLUMNS : new Set())}`).join('\n\n');
}

export function registerResults(program: Command): void {
  program
    .command('results <manifest> [tables...]')
    .description(`print a sweep's result tables (default: ${DEFAULT_RESULTS.join(', ')}); --list names them all`)
    .option('--format <format>', 'md (fractions of the classification tables as %), csv or json (values as computed)', 'md')
    .option('--list', 'list the tables with their row counts')
    .action(async (manifestFile: string, names: string[], options: { format: string; list?: boolean }, command: Command) => {
      if (!(FORMATS as readonly string[]).includes(options.format)) throw new UserError(`--format takes ${FORMATS.join(', ')}; got "${options.format}".`);
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const plan = await planSweep(sweep);
      const files = resultTables(plan, sweep.store, manifestFile);
      const read = (name: string) => JSON.parse(readFileSync(files.get(name)!, 'utf8')) as ResultRow[];
      if (options.list) {
        const rows = [...files.keys()].map((name) => ({ table: name, rows: read(name).length }));
        return print(await formatTables([['tables', rows]], options.format as Format));
      }
      const unknown = names.filter((name) => !files.has(name));
      if (unknown.length > 0) throw new UserError(`${plan.name} has no table ${unknown.map((n) => `"${n}"`).join(', ')}; it has ${[...files.keys()].join(', ')}.`);
      const chosen = names.length > 0 ? names : DEFAULT_RESULTS.filter((name) => files.has(name));
      print(await formatTables(chosen.map((name) => [name, read(name)]), options.format as Format));
    });
}
