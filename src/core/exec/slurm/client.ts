import { runCommand, type CommandResult, type CommandRunner } from './commands.ts';
import { LISTING_FORMAT, POLL_FORMAT, parseSacct, parseSbatchId, parseSqueue, type JobRecord } from './parse.ts';

/** A Slurm command failed in a way that may pass (controller busy or restarting, network): try again later. */
export class SlurmUnavailable extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command} failed: ${oneLine(stderr) || 'no message'}`);
  }
}

/** sbatch refused the job itself: its options are wrong, so sending it again cannot help. */
export class SubmissionRejected extends Error {
  constructor(readonly stderr: string) {
    super(oneLine(stderr));
  }
}

const oneLine = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');

/** Messages of a controller that is busy, restarting or out of reach, as opposed to one that refuses the job. */
const TRANSIENT = /timed out|unable to contact|temporarily|connection refused|zero bytes were transmitted|communication connection failure|transport endpoint|try again|slurm_persist_conn|socket/i;
/** squeue's answer when none of the given jobs is known any more: an empty listing, not an error. */
const NO_SUCH_JOBS = /invalid job id specified/i;
const NO_ACCOUNTING = /accounting storage is disabled|slurmdbd|accounting_storage\/none|no accounting/i;

/**
 * sbatch, squeue, sacct and scancel, with their output parsed. One call
 * each: the watcher decides how often to ask.
 */
export class SlurmClient {
  constructor(private readonly run: CommandRunner = runCommand) {}

  /** Submits a job script on stdin and returns its job id. */
  async submit(options: string[], script: string): Promise<string> {
    const result = await this.run('sbatch', ['--parsable', ...options], script);
    if (result.code !== 0) throw this.sbatchError(result);
    const id = parseSbatchId(result.stdout);
    if (!id) throw new SlurmUnavailable('sbatch', `unexpected output ${JSON.stringify(result.stdout.trim())}`);
    return id;
  }

  /** `sbatch --test-only`: checks the options against the cluster without submitting anything. */
  async check(options: string[], script: string): Promise<void> {
    const result = await this.run('sbatch', ['--test-only', ...options], script);
    if (result.code !== 0) throw this.sbatchError(result);
  }

  private sbatchError(result: CommandResult): Error {
    return TRANSIENT.test(result.stderr) ? new SlurmUnavailable('sbatch', result.stderr) : new SubmissionRejected(result.stderr);
  }

  /** The given jobs that squeue still knows, in any state. */
  async queue(ids: string[]): Promise<Map<string, JobRecord>> {
    if (ids.length === 0) return new Map();
    const result = await this.run('squeue', ['--noheader', '--states=all', `--jobs=${ids.join(',')}`, `--format=${POLL_FORMAT}`]);
    if (result.code !== 0) {
      if (NO_SUCH_JOBS.test(result.stderr)) return new Map();
      throw new SlurmUnavailable('squeue', result.stderr);
    }
    return new Map(parseSqueue(result.stdout).map((job) => [job.id, job]));
  }

  /** Every job of a user squeue still knows, with names and comments. */
  async listUser(user: string): Promise<JobRecord[]> {
    const result = await this.run('squeue', ['--noheader', '--states=all', `--user=${user}`, `--format=${LISTING_FORMAT}`]);
    if (result.code !== 0) throw new SlurmUnavailable('squeue', result.stderr);
    return parseSqueue(result.stdout);
  }

  /** Final states from accounting, or undefined where the cluster keeps none. */
  async accounting(ids: string[]): Promise<Map<string, JobRecord> | undefined> {
    if (ids.length === 0) return new Map();
    const result = await this.run('sacct', ['--noheader', '--parsable2', '--allocations', `--jobs=${ids.join(',')}`, '--format=JobIDRaw,State,ExitCode']);
    if (result.code !== 0) {
      if (NO_ACCOUNTING.test(result.stderr)) return undefined;
      throw new SlurmUnavailable('sacct', result.stderr);
    }
    return new Map(parseSacct(result.stdout).map((job) => [job.id, job]));
  }

  async cancel(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const result = await this.run('scancel', ids);
    // scancel complains about jobs that already ended; those need no cancelling.
    if (result.code !== 0 && !/already complet|invalid job id|not pending nor running/i.test(result.stderr)) throw new SlurmUnavailable('scancel', result.stderr);
  }
}
