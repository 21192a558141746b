import path from 'node:path';
import type { Task } from '../../plan/planner.ts';
import type { Pool } from '../../plan/stages.ts';
import type { SlurmConfig } from './config.ts';

/** Where a sweep's jobs write, and how they are told apart from everyone else's. */
export interface SweepJobs {
  /** The manifest's `name`. */
  sweep: string;
  /** runs/<name>: the comment of every job, so a restarted run finds its own jobs and not those of a namesake elsewhere. */
  sweepDir: string;
}

/** `salgrid:<sweep>:<stage>:<first 10 of the key>`: readable in squeue, and enough to find the task again. */
export function jobName(sweep: string, task: Pick<Task, 'stage' | 'key'>): string {
  return `salgrid:${sweep}:${task.stage}:${task.key.slice(0, 10)}`;
}

export function jobComment(jobs: SweepJobs): string {
  return `salgrid ${jobs.sweepDir}`;
}

export function logDir(jobs: SweepJobs): string {
  return path.join(jobs.sweepDir, 'slurm');
}

export function logFile(jobs: SweepJobs, key: string): string {
  return path.join(logDir(jobs), `${key}.out`);
}

/** The resource options of a job of this pool: tensor tasks get the GPUs, cpu tasks never. */
export function resourceOptions(config: SlurmConfig, pool: Pool): string[] {
  const options: string[] = [];
  if (config.partition) options.push(`--partition=${config.partition}`);
  if (config.account) options.push(`--account=${config.account}`);
  if (config.qos) options.push(`--qos=${config.qos}`);
  if (config.time) options.push(`--time=${config.time}`);
  if (config.mem) options.push(`--mem=${config.mem}`);
  if (config.cpusPerTask) options.push(`--cpus-per-task=${config.cpusPerTask}`);
  if (pool === 'gpu' && config.gpusPerTask > 0) options.push(`--gres=gpu:${config.gpusPerTask}`);
  return [...options, ...config.extraArgs];
}

/** Every sbatch option of a task's job (sbatch's own --parsable aside). */
export function jobOptions(task: Task, config: SlurmConfig, jobs: SweepJobs): string[] {
  return [
    `--job-name=${jobName(jobs.sweep, task)}`,
    `--output=${logFile(jobs, task.key)}`,
    // A retried task's log keeps the earlier attempts above the last one.
    '--open-mode=append',
    `--comment=${jobComment(jobs)}`,
    // extraArgs come last (inside resourceOptions), so a cluster-specific option can override ours.
    ...resourceOptions(config, task.pool),
  ];
}

const shellQuote = (word: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** The job script: a header line in the log, then the command, exec'd so Slurm's signals reach it. */
export function jobScript(task: Task, command: string[], attempt: number): string {
  return [
    '#!/bin/sh',
    `# ${task.label.replace(/\n/g, ' ')}`,
    `echo "=== job $SLURM_JOB_ID, attempt ${attempt}, on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ): ${task.stage} ${task.key.slice(0, 10)}"`,
    `exec ${command.map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
}
