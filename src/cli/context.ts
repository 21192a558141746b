import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { isStage, type Pool, type Stage } from '../core/plan/stages.ts';
import { BACKEND_REQUESTS, isBackendRequest, suggestBackend, type BackendRequest } from '../core/tensor/backend-names.ts';

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

/** The --backend option's help, the same in every command. */
export const BACKEND_HELP = 'tensor backend: auto, onnx (ONNX Runtime; onnx:cuda, onnx:webgpu, onnx:cpu to force a device), or TensorFlow.js tensorflow, webgpu, wasm, cpu';

export function parseBackend(text: string | undefined): BackendRequest | undefined {
  if (text === undefined) return undefined;
  if (!isBackendRequest(text)) {
    const near = suggestBackend(text);
    throw new UserError(`--backend takes ${BACKEND_REQUESTS.join(', ')}; got "${text}"${near ? ` (did you mean ${near}?)` : ''}.`);
  }
  return text;
}

/** --threads: intra-op threads of the onnx engine, a whole number ≥ 1. */
export function parseThreads(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new UserError(`--threads takes a whole number ≥ 1, got "${text}".`);
  return Number(text);
}

/** --threads of a command that runs one task in this process: at most the cores it may use. */
export function parseThreadsHere(text: string | undefined): number | undefined {
  const threads = parseThreads(text);
  const cores = os.availableParallelism();
  if (threads !== undefined && threads > cores) throw new UserError(`--threads ${threads} is more than the ${cores} cores here; give at most ${cores}.`);
  return threads;
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
