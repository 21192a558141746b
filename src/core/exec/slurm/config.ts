import type { Stage } from '../../plan/stages.ts';

/** `execution.slurm` of a manifest, with the schema's defaults filled in. */
export interface SlurmConfig {
  partition?: string;
  account?: string;
  qos?: string;
  /** Slurm's time format: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS. */
  time?: string;
  /** Memory per job, e.g. 16G. */
  mem?: string;
  cpusPerTask?: number;
  /** GPUs per tensor task (`--gres=gpu:N`); cpu tasks never ask for one. */
  gpusPerTask: number;
  extraArgs: string[];
  /** Most of our jobs queued or running at once. */
  maxJobs: number;
  pollSeconds: number;
  /** Stages that run on the submitting machine. */
  localStages: Stage[];
}

/** The manifest options that become sbatch options, in the order they are passed. */
export const SLURM_OPTIONS = ['partition', 'account', 'qos', 'time', 'mem', 'cpusPerTask', 'gpusPerTask', 'extraArgs'] as const;
export type SlurmOption = (typeof SLURM_OPTIONS)[number];
