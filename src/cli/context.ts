import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { isStage, type Pool, type Stage } from '../core/plan/stages.ts';
import { BACKEND_NAMES, type BackendRequest } from '../core/tensor/backend-names.ts';

/** The `salgrid` command itself, which Slurm jobs run. */
export const SALGRID_BIN = fileURLToPath(new URL('../../bin/salgrid.js', import.meta.url));

/** The module that registers the built-in plugins, handed to the registry and to every worker. */
export const BUILTINS = new URL('../plugins/index.ts', import.meta.url).href;

export interface GlobalOptions {
  runs: string;
}

export function runsDir(command: Command): string {
  const options = command.optsWithGlobals() as Partial<GlobalOptions>;
  return path.resolve(options.runs ?? process.env.SALGRID_RUNS ?? 'runs');
}

export function parseWorkers(text: string | undefined): Partial<Record<Pool, number>> {
  if (!text) return {};
  const workers: Partial<Record<Pool, number>> = {};
  for (const part of text.split(',')) {
    const match = /^(gpu|cpu)=(\d+)$/.exec(part.trim());
    if (!match || Number(match[2]) < 1) throw new UserError(`--workers takes pool=count pairs such as gpu=2,cpu=4, got "${part}".`);
    workers[match[1] as Pool] = Number(match[2]);
  }
  return workers;
}

export function parseBackend(text: string | undefined): BackendRequest | undefined {
  if (text === undefined) return undefined;
  if (text !== 'auto' && !(BACKEND_NAMES as readonly string[]).includes(text)) {
    throw new UserError(`--backend takes auto, ${BACKEND_NAMES.join(', ')}; got "${text}".`);
  }
  return text as BackendRequest;
}

export function parseExecutor(text: string | undefined): 'local' | 'slurm' | undefined {
  if (text === undefined) return undefined;
  if (text !== 'local' && text !== 'slurm') throw new UserError(`--executor takes local or slurm, got "${text}".`);
  return text;
}

export function parseStages(text: string | undefined): Stage[] | undefined {
  if (!text) return undefined;
  const stages = text.split(',').map((s) => s.trim());
  for (const stage of stages) {
    if (!isStage(stage)) throw new UserError(`--only names unknown stage "${stage}"; use index, split, train, predict, explain, score, aggregate or report.`);
  }
  return stages as Stage[];
}
