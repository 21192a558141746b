import { spawn } from 'node:child_process';
import { UserError } from '../../errors.ts';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one Slurm command; the client takes another one in unit tests. */
export type CommandRunner = (command: string, args: string[], input?: string) => Promise<CommandResult>;

/** A Slurm command is not on PATH: salgrid runs somewhere that is not part of the cluster. */
export class SlurmCommandMissing extends UserError {
  constructor(readonly command: string) {
    super(
      `\`${command}\` is not on PATH, and the slurm executor submits and watches jobs with sbatch, squeue and scancel; run salgrid on a login node of the cluster (or put Slurm's bin folder on PATH), or use \`--executor local\`.`,
    );
  }
}

/** A hung controller must not hang the sweep: the caller treats a timeout like any failed call and tries again later. */
const TIMEOUT_MS = 120_000;

export const runCommand: CommandRunner = (command, args, input) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n${command} timed out after ${TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error.code === 'ENOENT' ? new SlurmCommandMissing(command) : error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // A command that exits before reading its input closes the pipe: that is its answer, not ours to report.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
